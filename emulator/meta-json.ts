/**
 * JSON serialised the way Meta's servers write it: `/` escaped as `\/` and every non-ASCII code
 * unit as a lowercase `\u00e9`-style escape. A receiver that parses and re-serialises a webhook body gets
 * different bytes, so its signature check only passes when it hashes the raw body.
 */
export function metaStringify(value: unknown): string {
  const json = JSON.stringify(value) ?? 'null';
  // `/` and non-ASCII can only occur inside strings in JSON text, so a global replace is safe.
  return json.replace(/[/\u007f-\uffff]/g, (char) => {
    if (char === '/') return '\\/';
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}
