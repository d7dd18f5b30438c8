import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN_KEY, event, expectAccepted, expectProblem, STRUCTURED } from "../helpers";
import { IP, PRODUCE_PATH, produceInit, useCredentialHygiene } from "./auth-fixtures";
import { configWithSecurity, dataHeads, expectAudit, type TestApp, testApp } from "./helpers";

/*
 * mTLS route groups: a route group that needs a client certificate refuses a missing, failed,
 * revoked or (with security.mtls.certificates) unlisted certificate with 403 — even for the
 * admin — audits it and stores nothing; a certificate never replaces credentials.
 */

useCredentialHygiene();

describe("mTLS route groups", () => {
  const FINGERPRINT = "a".repeat(64);
  const OTHER_FINGERPRINT = "b".repeat(64);
  let mtlsApp: TestApp;
  let pinnedApp: TestApp;

  beforeAll(() => {
    mtlsApp = testApp(configWithSecurity({ mtls: { routeGroups: ["ingest"] } }));
    pinnedApp = testApp(configWithSecurity({ mtls: { routeGroups: ["ingest"], certificates: [{ fingerprintSha256: FINGERPRINT }] } }));
  });

  /** `request.cf.tlsClientAuth` as the edge sets it for a presented certificate. */
  const cert = (overrides: Record<string, string> = {}) => ({
    certPresented: "1",
    certVerified: "SUCCESS",
    certRevoked: "0",
    certSubjectDN: "CN=svc",
    certIssuerDN: "CN=ca",
    certSubjectDNRFC2253: "CN=svc",
    certIssuerDNRFC2253: "CN=ca",
    certSerial: "00936EACBE07F201DF",
    certFingerprintSHA1: "c".repeat(40),
    certFingerprintSHA256: FINGERPRINT,
    certNotBefore: "Dec 22 19:39:00 2018 GMT",
    certNotAfter: "Dec 22 19:39:00 2099 GMT",
    ...overrides,
  });
  const noCert = {
    certPresented: "0",
    certVerified: "NONE",
    certRevoked: "0",
    certSubjectDN: "",
    certIssuerDN: "",
    certFingerprintSHA256: "",
  };

  const produceAsAdmin = (app: TestApp, tlsClientAuth?: Record<string, string>) =>
    app.call(PRODUCE_PATH, produceInit(ADMIN_KEY, tlsClientAuth === undefined ? {} : { cf: { tlsClientAuth } }));

  async function expectCertRefused(app: TestApp, tlsClientAuth: Record<string, string> | undefined, reason: string): Promise<void> {
    const before = await dataHeads();
    const res = await produceAsAdmin(app, tlsClientAuth);
    const problem = await expectProblem(res, 403);
    expect(problem.code).toBe("forbidden");
    expect(problem.detail).toBe(reason);
    expect(res.headers.get("www-authenticate")).toBeNull();
    expect(await dataHeads()).toEqual(before);
    await expectAudit(problem.requestId, {
      action: "access.denied",
      outcome: "denied",
      status: 403,
      resource: "topic:events",
      actor: { id: "admin", kind: "admin-key" },
      reason,
      method: "POST",
      path: PRODUCE_PATH,
    });
  }

  it("no client certificate on an ingest route: 403, even for the admin", async () => {
    await expectCertRefused(mtlsApp, undefined, "a client certificate is required for this route (mTLS)");
    await expectCertRefused(mtlsApp, noCert, "a client certificate is required for this route (mTLS)");
  });

  it.each(["FAILED:self signed certificate", "FAILED:certificate has expired", "FAILED:unable to verify the first certificate", "FAILED"])(
    "a presented certificate that failed verification (%s): 403",
    async (certVerified) => {
      await expectCertRefused(mtlsApp, cert({ certVerified }), `the client certificate was not verified (${certVerified})`);
    },
  );

  it("a verified but revoked certificate: 403", async () => {
    await expectCertRefused(mtlsApp, cert({ certRevoked: "1" }), "the client certificate has been revoked");
  });

  it("a verified certificate: 202; reads (group read) and admin routes need none", async () => {
    await expectAccepted(await produceAsAdmin(mtlsApp, cert()));
    for (const path of ["/v1/topics", "/v1/topics/events", "/v1/keys"]) {
      const res = await mtlsApp.call(path, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      expect(res.status, path).toBe(200);
      await res.arrayBuffer();
    }
  });

  it("a certificate does not replace credentials: a verified certificate without Authorization is 401", async () => {
    const before = await dataHeads();
    const res = await mtlsApp.call(PRODUCE_PATH, {
      method: "POST",
      headers: { "content-type": STRUCTURED, "cf-connecting-ip": IP },
      body: JSON.stringify(event()),
      cf: { tlsClientAuth: cert() },
    });
    const problem = await expectProblem(res, 401);
    expect(await dataHeads()).toEqual(before);
    await expectAudit(problem.requestId, { action: "auth.failed", status: 401, actor: { id: "unauthenticated" }, ip: IP });
  });

  it("with security.mtls.certificates, a verified certificate that is not listed: 403; the listed one: 202", async () => {
    await expectCertRefused(
      pinnedApp,
      cert({ certFingerprintSHA256: OTHER_FINGERPRINT }),
      "the client certificate is not one of the certificates allowed for this route",
    );
    await expectCertRefused(
      pinnedApp,
      cert({ certFingerprintSHA256: FINGERPRINT.toUpperCase() }),
      "the client certificate is not one of the certificates allowed for this route",
    );
    await expectCertRefused(
      pinnedApp,
      cert({ certVerified: "FAILED:self signed certificate" }),
      "the client certificate was not verified (FAILED:self signed certificate)",
    );
    await expectAccepted(await produceAsAdmin(pinnedApp, cert()));
  });
});
