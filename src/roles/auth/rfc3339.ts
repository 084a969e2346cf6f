/**
 * Strict RFC 3339 `date-time` (the form EIP-4361 requires for Issued At, Expiration Time and Not
 * Before), as milliseconds since the epoch, or null when the text is not one or cannot be read exactly.
 *
 * Stricter than `Date.parse`, which reads other forms too and returns NaN for some valid RFC 3339 times:
 * a leap second (`…T23:59:60Z`) is valid RFC 3339 but has no instant in JavaScript's time scale, so it
 * comes back null (refused) rather than skipped or moved to a neighbouring second.
 */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;

export function rfc3339Ms(text: string): number | null {
  const m = DATE_TIME.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return null;
  let offsetMin = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC maps years 0-99 to 1900-1999; RFC 3339 years are literal.
  const d = new Date(utc);
  if (year < 100) d.setUTCFullYear(year);
  const t = d.getTime() - offsetMin * 60_000;
  return Number.isFinite(t) ? t : null;
}
