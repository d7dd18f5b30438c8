/**
 * DOM construction without markup: every value from the API becomes a text node or an attribute
 * value, never parsed HTML (the integration test refuses innerHTML and friends in the bundle).
 */

export const SVG_NS = "http://www.w3.org/2000/svg";

type AttrValue = string | number | boolean | null | undefined | ((event: Event) => void);
/** Attributes; `text` sets the text content, `on…` functions become listeners, false/null/undefined are left out. */
export type Attrs = Record<string, AttrValue>;
export type Child = Node | string | number | null | undefined | false;
export type Children = Child | Child[];

/** An element the page shell (or an open view) always has; a missing one is a bug, reported by the poll's catch. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

function setAttrs<E extends Element>(el: E, attrs?: Attrs | null): E {
  if (!attrs) return el;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (typeof v === "function") {
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    } else el.setAttribute(k, v === true ? "" : String(v));
  }
  return el;
}

function add<E extends Element>(el: E, children?: Children): E {
  if (children === undefined || children === null || children === false) return el;
  for (const c of Array.isArray(children) ? children : [children]) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element; children are nodes or text (never parsed as markup). */
export const h = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, children?: Children): HTMLElementTagNameMap[K] =>
  add(setAttrs(document.createElement(tag), attrs), children);

/** An SVG element. */
export const s = <K extends keyof SVGElementTagNameMap>(tag: K, attrs?: Attrs | null, children?: Children): SVGElementTagNameMap[K] =>
  add(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);

/** What each column means, as visible text under a table (tooltips alone reach neither touch nor every reader). */
export function legend(columns: Column[]): HTMLDListElement {
  const dl = h("dl", { class: "legend-table" });
  for (const c of columns) {
    if (!c.help) continue;
    dl.appendChild(h("dt", { text: c.text }));
    dl.appendChild(h("dd", { text: c.help }));
  }
  return dl;
}

export function clear<E extends Element>(el: E): E {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A table's column: its header, numeric (right-aligned), and what it means (the header's tooltip). */
export interface Column {
  text: string;
  num?: boolean;
  help?: string;
}

/** A table with a header row and an optional screen-reader caption; a column's `help` is its header's title. */
export function table(headers: Column[], rows: Node[], caption?: string): HTMLTableElement {
  const t = h("table", null, caption ? h("caption", { class: "sr", text: caption }) : null);
  t.appendChild(
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : null, title: x.help, text: x.text })),
      ),
    ),
  );
  const body = h("tbody");
  for (const r of rows) body.appendChild(r);
  t.appendChild(body);
  return t;
}

/** The `data-key` of the focused element inside `container`, so a re-render can put focus back. */
export function rememberFocus(container: Element): string | null {
  const a = document.activeElement;
  return a && container.contains(a) && a.getAttribute("data-key") ? a.getAttribute("data-key") : null;
}

export function restoreFocus(container: Element, key: string | null): void {
  if (!key) return;
  const el = container.querySelector<HTMLElement | SVGElement>(`[data-key="${CSS.escape(key)}"]`);
  if (el) el.focus();
}
