// A small strict reader of S3 ListObjectsV2 answers (the XML of one page): what the direct listing in s3-direct.ts parses instead of the SDK.
//
// Why: a listing page of 1,000 keys is ~200 KB of XML; the SDK turns it into a generic object tree and then walks its
// schema over it, ~25-55 µs of CPU per key. Scanning the text with indexOf for the four fields swm uses costs a fraction
// of that, and listing is most of a no-op push's client CPU.
//
// Strict on purpose: anything this reader does not expect (a CDATA section, a comment, an attribute on a field, an
// unknown entity, a number or timestamp in another form, a missing closing tag) throws ListXmlError, and the caller
// repeats the page through the SDK. So the reader only has to be right for what it accepts.

/** ListedObject is one <Contents> entry, with the optionality of the SDK's `_Object`: fields the answer lacked are undefined. */
export interface ListedObject {
  key: string | undefined;
  size: number | undefined;
  /** the ETag as sent, quotes included. */
  etag: string | undefined;
  /** LastModified in ms since the epoch, read as the SDK reads it (RFC 3339, fractions rounded to ms). */
  lastModified: number | undefined;
}

/** ListPage is one page of a ListObjectsV2 answer, keys already URL-decoded when the answer says they were encoded. */
export interface ListPage {
  objects: ListedObject[];
  isTruncated: boolean;
  nextContinuationToken: string | undefined;
}

/** ListXmlError says a listing answer could not be read; `incomplete` when the document ended early (a cut body). */
export class ListXmlError extends Error {
  constructor(
    message: string,
    readonly incomplete = false,
  ) {
    super(`ListObjectsV2 answer: ${message}`);
    this.name = 'ListXmlError';
  }
}

const ROOT = 'ListBucketResult';
const ROOT_CLOSE = `</${ROOT}`;
/** the fields read from the root element. */
const ROOT_FIELDS = new Set(['IsTruncated', 'NextContinuationToken', 'EncodingType']);
const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
/** RFC3339 is the SDK's own pattern for XML timestamps (@smithy/core serde). */
const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)[tT](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(([-+])(\d\d):(\d\d)|[zZ])$/;

/**
 * parseListObjectsV2 reads one ListObjectsV2 answer. Keys are URL-decoded when the answer carries
 * <EncodingType>url</EncodingType> (the request asked for it), as decodeListedKey describes. Throws ListXmlError.
 */
export function parseListObjectsV2(xml: string): ListPage {
  const reader = new Reader(xml);
  const page = reader.document();
  if (page.encodingType !== undefined) {
    if (page.encodingType !== 'url') throw new ListXmlError(`unknown EncodingType "${page.encodingType}"`);
    for (const o of page.objects) if (o.key !== undefined) o.key = decodeListedKey(o.key);
  }
  return { objects: page.objects, isTruncated: page.isTruncated, nextContinuationToken: page.nextContinuationToken };
}

/**
 * decodeListedKey undoes S3's `encoding-type=url` on a key: form encoding, i.e. %XX escapes of UTF-8 bytes and "+" for a
 * space ("+" itself arrives as %2B). AWS and MinIO encode so, and the AWS CLI decodes so (botocore's unquote_plus).
 * Throws ListXmlError on a malformed escape.
 */
export function decodeListedKey(encoded: string): string {
  if (!encoded.includes('%') && !encoded.includes('+')) return encoded;
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    throw new ListXmlError(`a key is not valid URL encoding: ${JSON.stringify(encoded)}`);
  }
}

/** parseTimestamp reads an RFC 3339 timestamp to ms exactly as the SDK's _parseRfc3339DateTimeWithOffset does. */
export function parseTimestamp(text: string): number {
  // the form S3 servers send, "2024-01-02T03:04:05.678Z", read without a regex; anything else takes the general path
  if (text.length === 24 && text.charCodeAt(23) === 0x5a && text.charCodeAt(19) === 0x2e && text.charCodeAt(10) === 0x54) {
    const year = digitsAt(text, 0, 4);
    const month = text.charCodeAt(4) === 0x2d ? digitsAt(text, 5, 2) : -1;
    const day = text.charCodeAt(7) === 0x2d ? digitsAt(text, 8, 2) : -1;
    const hours = digitsAt(text, 11, 2);
    const minutes = text.charCodeAt(13) === 0x3a ? digitsAt(text, 14, 2) : -1;
    const seconds = text.charCodeAt(16) === 0x3a ? digitsAt(text, 17, 2) : -1;
    const ms = digitsAt(text, 20, 3);
    // years below 100 would need the SDK's setUTCFullYear; three fraction digits round to themselves
    if (year >= 100 && month >= 1 && month <= 12 && day >= 1 && day <= 31 && hours >= 0 && hours <= 23 && minutes >= 0 && minutes <= 59 && seconds >= 0 && seconds <= 60 && ms >= 0) {
      return Date.UTC(year, month - 1, day, hours, minutes, seconds, ms);
    }
  }
  const m = RFC3339.exec(text);
  if (!m) throw new ListXmlError(`LastModified is not an RFC 3339 timestamp: ${JSON.stringify(text)}`);
  const [, year, month, day, hours, minutes, seconds, fraction, , sign, offsetH, offsetM] = m;
  const inRange = (v: string, lo: number, hi: number) => Number(v) >= lo && Number(v) <= hi;
  if (!inRange(month!, 1, 12) || !inRange(day!, 1, 31) || !inRange(hours!, 0, 23) || !inRange(minutes!, 0, 59) || !inRange(seconds!, 0, 60)) {
    throw new ListXmlError(`LastModified is out of range: ${JSON.stringify(text)}`);
  }
  const ms = fraction && Number(fraction) ? Math.round(parseFloat(`0.${fraction}`) * 1000) : 0;
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hours), Number(minutes), Number(seconds), ms));
  date.setUTCFullYear(Number(year));
  let time = date.getTime();
  if (sign) time += (sign === '-' ? 1 : -1) * (Number(offsetH) * 3_600_000 + Number(offsetM) * 60_000);
  return time;
}

/** digitsAt reads `count` decimal digits at `from`; -1 when one is not a digit. */
function digitsAt(text: string, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** decodeText resolves the entities of an element's text (the five named ones, decimal and hex) and XML's line-end normalisation. */
export function decodeText(raw: string): string {
  let text = raw;
  if (text.includes('\r')) text = text.replace(/\r\n?/g, '\n');
  const first = text.indexOf('&');
  if (first < 0) return text;
  // an ETag: "&#34;<hex>&#34;" (MinIO) or "&quot;<hex>&quot;" (AWS)
  const quote = text.startsWith('&#34;') ? '&#34;' : text.startsWith('&quot;') ? '&quot;' : undefined;
  if (first === 0 && quote && text.length >= 2 * quote.length && text.endsWith(quote) && text.indexOf('&', quote.length) === text.length - quote.length) {
    return `"${text.slice(quote.length, text.length - quote.length)}"`;
  }
  let out = '';
  let from = 0;
  for (;;) {
    const amp = from === 0 ? first : text.indexOf('&', from);
    if (amp < 0) return out + text.slice(from);
    const semi = text.indexOf(';', amp + 1);
    if (semi < 0 || semi - amp > 12) throw new ListXmlError(`an "&" that starts no entity in ${JSON.stringify(raw)}`);
    const name = text.slice(amp + 1, semi);
    let decoded: string | undefined;
    if (name.startsWith('#x') || name.startsWith('#X')) decoded = fromCodePoint(/^[0-9a-fA-F]{1,6}$/.test(name.slice(2)) ? parseInt(name.slice(2), 16) : NaN);
    else if (name.startsWith('#')) decoded = fromCodePoint(/^\d{1,7}$/.test(name.slice(1)) ? parseInt(name.slice(1), 10) : NaN);
    else decoded = NAMED_ENTITIES[name];
    if (decoded === undefined) throw new ListXmlError(`unknown entity &${name}; in ${JSON.stringify(raw)}`);
    out += text.slice(from, amp) + decoded;
    from = semi + 1;
  }
}

function fromCodePoint(code: number): string | undefined {
  // XML 1.0 characters are never 0, a surrogate or beyond U+10FFFF; whatever else a server escapes is taken as given
  if (!Number.isInteger(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return undefined;
  return String.fromCodePoint(code);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Reader walks the document once, left to right, with indexOf. */
class Reader {
  private i = 0;
  /** whether the tag openTag just read was <Name/>. */
  private selfClosed = false;
  private readonly x: string;

  constructor(xml: string) {
    this.x = xml.charCodeAt(0) === 0xfeff ? xml.slice(1) : xml;
  }

  document(): { objects: ListedObject[]; isTruncated: boolean; nextContinuationToken: string | undefined; encodingType: string | undefined } {
    const x = this.x;
    this.skipSpace();
    if (x.startsWith('<?xml', this.i)) {
      const end = x.indexOf('?>', this.i);
      if (end < 0) throw new ListXmlError('the XML declaration does not end', true);
      this.i = end + 2;
      this.skipSpace();
    }
    if (!x.startsWith(`<${ROOT}`, this.i)) {
      const rest = x.slice(this.i);
      const cut = `<?xml`.startsWith(rest) || `<${ROOT}`.startsWith(rest);
      throw new ListXmlError(cut ? 'the document ends before its root element' : `the root element is not <${ROOT}>`, cut);
    }
    const rootEnd = x.indexOf('>', this.i);
    if (rootEnd < 0) throw new ListXmlError('the root tag does not end', true);
    const after = x.charCodeAt(this.i + ROOT.length + 1);
    if (!(after === 0x3e || isSpace(after)) || x.charCodeAt(rootEnd - 1) === 0x2f) throw new ListXmlError(`unexpected root tag ${x.slice(this.i, rootEnd + 1)}`);
    this.i = rootEnd + 1;

    const objects: ListedObject[] = [];
    const fields = new Map<string, string>();
    for (;;) {
      this.skipSpace();
      if (x.startsWith(ROOT_CLOSE, this.i)) {
        this.i += ROOT_CLOSE.length;
        this.skipSpace();
        if (x.charCodeAt(this.i) !== 0x3e) throw new ListXmlError(`malformed </${ROOT}>`, this.i >= x.length);
        this.i++;
        this.skipSpace();
        if (this.i !== x.length) throw new ListXmlError(`content after </${ROOT}>`);
        break;
      }
      const name = this.openTag();
      if (name === 'Contents') objects.push(this.contents());
      else if (ROOT_FIELDS.has(name)) {
        if (fields.has(name)) throw new ListXmlError(`<${name}> appears twice`);
        fields.set(name, this.text(name));
      } else this.skipElement(name);
    }
    const truncated = fields.get('IsTruncated')?.toLowerCase();
    if (truncated !== undefined && truncated !== 'true' && truncated !== 'false') throw new ListXmlError(`IsTruncated is ${JSON.stringify(truncated)}`);
    return {
      objects,
      isTruncated: truncated === 'true',
      nextContinuationToken: fields.get('NextContinuationToken'),
      encodingType: fields.get('EncodingType'),
    };
  }

  /** contents reads the children of one <Contents> (its opening tag already read) up to and including </Contents>. */
  private contents(): ListedObject {
    const x = this.x;
    let key: string | undefined;
    let size: number | undefined;
    let etag: string | undefined;
    let lastModified: number | undefined;
    let seen = 0;
    for (;;) {
      this.skipSpace();
      if (x.startsWith('</Contents>', this.i)) {
        this.i += '</Contents>'.length;
        return { key, size, etag, lastModified };
      }
      const name = this.openTag();
      const field = name === 'Key' ? 1 : name === 'ETag' ? 2 : name === 'Size' ? 4 : name === 'LastModified' ? 8 : 0;
      if (field === 0) {
        this.skipElement(name);
        continue;
      }
      if (seen & field) throw new ListXmlError(`<${name}> appears twice in one <Contents>`);
      seen |= field;
      const text = this.text(name);
      if (field === 1) key = text;
      else if (field === 2) etag = text;
      else if (field === 4) {
        if (text.length === 0 || text.length > 15 || digitsAt(text, 0, text.length) < 0) throw new ListXmlError(`Size is ${JSON.stringify(text)}`);
        size = Number(text);
      } else lastModified = parseTimestamp(text);
    }
  }

  /** openTag reads "<Name>" (or "<Name/>", left for text/skipElement to see) and returns the name; no attributes allowed. */
  private openTag(): string {
    const x = this.x;
    const at = this.i;
    if (at >= x.length) throw new ListXmlError(`the document ends before </${ROOT}>`, true);
    if (x.charCodeAt(at) !== 0x3c) throw new ListXmlError(`text where an element was expected at offset ${at}`);
    const end = x.indexOf('>', at);
    if (end < 0) throw new ListXmlError('a tag does not end', true);
    this.selfClosed = x.charCodeAt(end - 1) === 0x2f;
    const nameEnd = this.selfClosed ? end - 1 : end;
    // a name: a letter or "_", then letters, digits, "_", "-", "." (no attributes, no "</", "<!", "<?")
    for (let i = at + 1; i < nameEnd; i++) {
      const c = x.charCodeAt(i);
      const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
      if (!letter && (i === at + 1 || !((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e))) throw new ListXmlError(`unexpected tag ${x.slice(at, end + 1)}`);
    }
    if (nameEnd === at + 1) throw new ListXmlError(`unexpected tag ${x.slice(at, end + 1)}`);
    this.i = end + 1;
    return x.slice(at + 1, nameEnd);
  }

  /** text reads a text-only element's content up to and including its closing tag. */
  private text(name: string): string {
    if (this.selfClosed) return '';
    const x = this.x;
    const lt = x.indexOf('<', this.i);
    if (lt < 0) throw new ListXmlError(`<${name}> does not end`, true);
    if (x.charCodeAt(lt + 1) !== 0x2f || !x.startsWith(name, lt + 2) || x.charCodeAt(lt + 2 + name.length) !== 0x3e) {
      const close = `</${name}>`;
      if (lt + close.length > x.length && close.startsWith(x.slice(lt))) throw new ListXmlError(`<${name}> does not end`, true);
      throw new ListXmlError(`<${name}> holds more than text`);
    }
    const raw = x.slice(this.i, lt);
    this.i = lt + name.length + 3;
    return decodeText(raw);
  }

  /** skipElement passes over an element swm does not read (it may hold children: Owner, RestoreStatus...). */
  private skipElement(name: string): void {
    if (this.selfClosed) return;
    const close = `</${name}>`;
    const at = this.x.indexOf(close, this.i);
    if (at < 0) throw new ListXmlError(`<${name}> does not end`, true);
    // text cannot hold "<", so the first closing tag of that name is this element's unless it nests itself
    if (this.x.lastIndexOf(`<${name}>`, at) >= this.i) throw new ListXmlError(`<${name}> nests itself`);
    this.i = at + close.length;
  }

  private skipSpace(): void {
    const x = this.x;
    while (this.i < x.length && isSpace(x.charCodeAt(this.i))) this.i++;
  }
}
