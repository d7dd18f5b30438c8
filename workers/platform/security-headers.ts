/**
 * The headers of every page and asset the Worker serves to browsers (the dashboard, the API
 * reference): a self-only Content-Security-Policy and the usual anti-framing, anti-sniffing ones.
 */

/**
 * Only same-origin script, style, images and fetches; no inline code, no eval, no framing, no form
 * posts. `inlineStyles` adds 'unsafe-inline' to style-src alone — the API reference's renderer
 * injects its stylesheets as <style> elements and sets style attributes (ADR 0043); scripts stay 'self'.
 */
export function selfOnlyCsp({ inlineStyles = false }: { inlineStyles?: boolean } = {}): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    inlineStyles ? "style-src 'self' 'unsafe-inline'" : "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "font-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** The security headers with `csp`, for a response of `type` cached as `cacheControl` says. */
export function browserHeaders(type: string, csp: string, cacheControl: string): Record<string, string> {
  return {
    "content-type": type,
    "content-security-policy": csp,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": cacheControl,
  };
}
