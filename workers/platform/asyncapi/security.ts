import type { EventlineConfig, RouteGroup } from "../../../shared/config";

/**
 * The AsyncAPI security schemes of the real authentication (workers/platform/auth/, docs/security.md):
 * an Eventline API key or, when OIDC issuers are configured, a JWT, both as `Authorization: Bearer`;
 * and, for the route groups configured to need one, a verified client certificate. AsyncAPI lists
 * alternatives ("one of them must be satisfied"), so the certificate, which is required *in
 * addition* to the bearer credential, is named by an extension on the operations it applies to.
 */

const scheme = (name: string) => ({ $ref: `#/components/securitySchemes/${name}` });

export function securitySchemes(config: EventlineConfig): Record<string, Record<string, unknown>> {
  const { oidc, mtls } = config.security;
  return {
    apiKey: {
      type: "http",
      scheme: "bearer",
      description:
        "An Eventline API key: `Authorization: Bearer evl_…`, minted with POST /v1/keys by an admin (locally EVENTLINE_ADMIN_KEY from .dev.vars). Its grants (produce, consume, replay, admin, decrypt on topic patterns) decide what it may do (docs/security.md).",
    },
    ...(oidc.issuers.length === 0
      ? {}
      : {
          jwt: {
            type: "http",
            scheme: "bearer",
            bearerFormat: "JWT",
            description: `A JWT from a configured OIDC issuer (${oidc.issuers.map((i) => i.issuer).join(", ")}): asymmetric algorithms only; iss, aud, exp and sub required; grants in its claim (docs/security.md).`,
          },
        }),
    ...(mtls.routeGroups.length === 0
      ? {}
      : {
          clientCertificate: {
            type: "X509",
            description: `A client certificate verified by Cloudflare (mTLS), required in addition to the bearer credential on the route groups ${mtls.routeGroups.join(", ")}${mtls.certificates.length === 0 ? "" : ", and one of the certificates the config allows"}.`,
          },
        }),
  };
}

/** Which bearer schemes a request may use: the API key, or a JWT when issuers are configured. */
export function bearerSecurity(config: EventlineConfig): { $ref: string }[] {
  return [scheme("apiKey"), ...(config.security.oidc.issuers.length === 0 ? [] : [scheme("jwt")])];
}

/** An operation's security: a bearer credential, and the client certificate where the route group needs one. */
export function topicSecurity(config: EventlineConfig, group: RouteGroup): Record<string, unknown> {
  return {
    security: bearerSecurity(config),
    ...(config.security.mtls.routeGroups.includes(group) ? { "x-eventline-also-required": [scheme("clientCertificate")] } : {}),
  };
}
