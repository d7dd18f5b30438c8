/**
 * The dashboard's page shell, served at /dashboard without credentials: it holds no data. The
 * script (/dashboard/app.js) asks for an API key, keeps it in sessionStorage and polls the
 * authenticated JSON API with it. No inline script or style, so the CSP can forbid both.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Eventline dashboard</title>
<link rel="icon" href="/dashboard/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="bar">
  <h1>Eventline</h1>
  <span id="health" class="badge" role="status" data-status="unknown" hidden>Health: unknown</span>
  <span id="health-reasons" class="reasons" hidden></span>
  <span class="spacer"></span>
  <p id="updated">Not signed in</p>
  <button id="signout" type="button" hidden>Sign out</button>
</header>
<main id="main">
  <noscript><p class="error">The dashboard needs JavaScript; the API itself is documented at <a href="/docs">/docs</a>.</p></noscript>

  <section id="signin" class="card" aria-labelledby="signin-title" hidden>
    <h2 id="signin-title">Sign in</h2>
    <p id="signin-error" class="error" role="alert" hidden></p>
    <form id="signin-form" autocomplete="off">
      <label for="token">API key or token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required aria-describedby="signin-help">
      <button type="submit" class="primary">Sign in</button>
    </form>
    <p id="signin-help" class="help"><span class="q" aria-hidden="true">?</span>Locally the admin key is
      <code>EVENTLINE_ADMIN_KEY</code> in <code>.dev.vars</code> (<code>npm start</code> creates it); any
      <code>evl_…</code> key from <code>POST /v1/keys</code> or an OIDC token works too, and shows what its grants allow.
      The key stays in this tab (sessionStorage) and is only sent to this server's API as <code>Authorization: Bearer</code>.</p>
  </section>

  <div id="app" hidden>
    <p id="error" class="error" role="alert" hidden></p>

    <section class="card" aria-labelledby="flow-title">
      <h2 id="flow-title" tabindex="-1">Event flow</h2>
      <p class="note" id="flow-note">Producers → topics → partitions → subscriptions → consumers. Edge labels are events per second
        over the server's recent window (5 minutes by default); dashes flow on edges whose counts moved since the last update.
        Select a topic, partition or subscription for details.</p>
      <div id="graph" class="graph-wrap"></div>
    </section>

    <section id="detail" class="card" aria-labelledby="detail-title" hidden>
      <div class="top">
        <h2 id="detail-title" tabindex="-1">Details</h2>
        <button id="detail-close" type="button">Close</button>
      </div>
      <div id="detail-body"></div>
    </section>

    <section class="card" aria-labelledby="charts-title">
      <h2 id="charts-title">Recent history</h2>
      <div class="charts">
        <figure class="chart" id="chart-throughput"></figure>
        <figure class="chart" id="chart-errors"></figure>
        <figure class="chart" id="chart-latency"></figure>
      </div>
    </section>

    <div class="cols">
      <section class="card" aria-labelledby="subs-title">
        <h2 id="subs-title">Subscriptions</h2>
        <div id="subscriptions" class="scroll"></div>
      </section>
      <section class="card" aria-labelledby="replays-title">
        <h2 id="replays-title">Replay jobs</h2>
        <div id="replays"></div>
      </section>
    </div>
  </div>
</main>
</body>
</html>
`;

/** The favicon (so the browser's automatic /favicon.ico request is not needed). */
export const DASHBOARD_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f5fbf"/><path d="M6 10h20M6 16h14M6 22h20" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>
`;
