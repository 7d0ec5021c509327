/**
 * Elements built from text only: job data (payloads, results, errors, type names) always goes in
 * as a text node or an attribute value, never through innerHTML, so none of it is read as markup.
 */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/** The element a test (and this page) names with `data-testid`. */
export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** A time for people: local, to the second; a dash for none. */
export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' }) : '–';
}

/** JSON as indented text, for `<pre>`. */
export function formatJson(value) {
  return value === null || value === undefined ? '–' : JSON.stringify(value, null, 2);
}
