/**
 * Quotes `text` as one word for a POSIX shell; safe words are left as they are. With
 * `keepTilde`, a leading `~/` stays unquoted so the shell that runs it expands it.
 */
export function shellQuote(text: string, keepTilde = false): string {
  if (keepTilde && text.startsWith('~/')) return `~/${text.length > 2 ? shellQuote(text.slice(2)) : ''}`;
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
