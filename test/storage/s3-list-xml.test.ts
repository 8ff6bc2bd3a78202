// The ListObjectsV2 XML reader on literal answers: odd keys, entities, URL-encoded keys, empty and truncated pages, and everything it must refuse.
import { parseXML } from '@aws-sdk/xml-builder';
import { _parseRfc3339DateTimeWithOffset } from '@smithy/core/serde';
import { describe, expect, it } from 'vitest';
import { ListXmlError, decodeListedKey, decodeText, parseListObjectsV2, parseTimestamp } from '../../src/storage/s3-list-xml.js';

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">';
const TAIL = '</ListBucketResult>';

/** contents writes one <Contents> as MinIO does (quotes as &#34;, StorageClass after Size). */
function contents(key: string, etag = '&#34;9dd4e461268c8034f5c8564e155c67a6&#34;', size = '1', modified = '2026-11-23T17:37:37.333Z'): string {
  return `<Contents><Key>${key}</Key><LastModified>${modified}</LastModified><ETag>${etag}</ETag><Size>${size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
}

function page(body: string, truncated = false, extra = ''): string {
  return `${HEAD}<Name>b</Name><Prefix>x/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>${truncated}</IsTruncated>${body}${extra}${TAIL}`;
}

/** refusal returns the ListXmlError parsing xml throws (failing the test when it does not throw). */
function refusal(xml: string): ListXmlError {
  try {
    parseListObjectsV2(xml);
  } catch (e) {
    expect(e).toBeInstanceOf(ListXmlError);
    return e as ListXmlError;
  }
  return expect.fail(`accepted: ${xml}`);
}

describe('parseListObjectsV2', () => {
  it('reads key, size, etag and last-modified of each object, in order', () => {
    const xml = page(contents('x/a', '&#34;abc&#34;', '0', '2024-01-02T03:04:05.678Z') + contents('x/b', '&quot;def-2&quot;', '123456789012', '2024-01-02T03:04:05Z'));
    expect(parseListObjectsV2(xml)).toEqual({
      objects: [
        { key: 'x/a', size: 0, etag: '"abc"', lastModified: Date.UTC(2024, 0, 2, 3, 4, 5, 678) },
        { key: 'x/b', size: 123456789012, etag: '"def-2"', lastModified: Date.UTC(2024, 0, 2, 3, 4, 5) },
      ],
      isTruncated: false,
      nextContinuationToken: undefined,
    });
  });

  it('reads an empty listing', () => {
    const xml = `${HEAD}<Name>b</Name><Prefix>nothing/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><EncodingType>url</EncodingType>${TAIL}`;
    expect(parseListObjectsV2(xml)).toEqual({ objects: [], isTruncated: false, nextContinuationToken: undefined });
    // AWS's form: no declaration, a self-closed Prefix, pretty-printed
    expect(parseListObjectsV2(`<ListBucketResult>\n  <Name>b</Name>\n  <Prefix/>\n  <KeyCount>0</KeyCount>\n  <IsTruncated>false</IsTruncated>\n</ListBucketResult>\n`)).toEqual({
      objects: [],
      isTruncated: false,
      nextContinuationToken: undefined,
    });
  });

  it('reads a truncated page and its continuation token (entities resolved, not URL-decoded)', () => {
    const token = '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=+a%2B';
    const xml = page(contents('x/a'), true, `<NextContinuationToken>${token.replace(/&/g, '&amp;')}</NextContinuationToken><EncodingType>url</EncodingType>`);
    const p = parseListObjectsV2(xml);
    expect(p.isTruncated).toBe(true);
    expect(p.nextContinuationToken).toBe(token);
    expect(p.objects.map((o) => o.key)).toEqual(['x/a']);
    expect(parseListObjectsV2(page(contents('x/a'), 'TRUE' as unknown as boolean)).isTruncated).toBe(true);
  });

  it('decodes URL-encoded keys as MinIO and AWS send them (space as +, + as %2B), only when EncodingType is url', () => {
    // literal MinIO answer keys for: "x/  ", "x/a+b", "x/a%b", "x/a&b", "x/a<b>", "x/cr\rlf\n", "x/ctl\x01\x1f", "x/~*!()", "x/ü", "x/\uFFFE", "x/😀"
    const encoded = ['x/++', 'x/a%2Bb', 'x/a%25b', 'x/a%26b', 'x/a%3Cb%3E', 'x/cr%0Dlf%0A', 'x/ctl%01%1F', 'x/%7E*%21%28%29', 'x/%C3%BC', 'x/%EF%BF%BE', 'x/%F0%9F%98%80'];
    const decoded = ['x/  ', 'x/a+b', 'x/a%b', 'x/a&b', 'x/a<b>', 'x/cr\rlf\n', 'x/ctl\x01\x1f', 'x/~*!()', 'x/ü', 'x/\uFFFE', 'x/\u{1F600}'];
    const body = encoded.map((k) => contents(k)).join('');
    expect(parseListObjectsV2(page(body, false, '<EncodingType>url</EncodingType>')).objects.map((o) => o.key)).toEqual(decoded);
    // EncodingType before the objects (AWS's order) works the same
    expect(parseListObjectsV2(`${HEAD}<EncodingType>url</EncodingType>${body}${TAIL}`).objects.map((o) => o.key)).toEqual(decoded);
    // without it the keys are taken as they are
    expect(parseListObjectsV2(page(body)).objects.map((o) => o.key)).toEqual(encoded);
  });

  it('resolves named, decimal and hex entities in raw keys, astral characters included', () => {
    const keys = ['a&amp;b', 'a&lt;b&gt;', '&quot;q&apos;', '&#34;&#39;', 'ctl&#x1;&#x9;&#xD;&#xA;', '&#x1F600;&#128512;', 'ü日本', 'tab\there'];
    const p = parseListObjectsV2(page(keys.map((k) => contents(k)).join('')));
    expect(p.objects.map((o) => o.key)).toEqual(['a&b', 'a<b>', `"q'`, `"'`, 'ctl\x01\t\r\n', '\u{1F600}\u{1F600}', 'ü日本', 'tab\there']);
  });

  it('agrees with the SDK\'s own XML parser on what both read', () => {
    const xml = page(contents('a&amp;b &lt;c&gt;') + contents('plain', '&#34;x&#34;', '42', '2023-06-30T23:59:59.999+02:00'), true, '<NextContinuationToken>t&amp;k</NextContinuationToken>');
    const sdk = parseXML(xml) as { ListBucketResult: { Contents: { Key: string; ETag: string; Size: string }[]; NextContinuationToken: string } };
    const ours = parseListObjectsV2(xml);
    expect(ours.objects.map((o) => [o.key, o.etag, String(o.size)])).toEqual(sdk.ListBucketResult.Contents.map((c) => [c.Key, c.ETag, c.Size]));
    expect(ours.nextContinuationToken).toBe(sdk.ListBucketResult.NextContinuationToken);
    expect(ours.objects[1]!.lastModified).toBe(Date.UTC(2023, 5, 30, 21, 59, 59, 999));
  });

  it('skips fields it does not use, nested ones included, and leaves missing ones undefined', () => {
    const xml = page(
      '<Contents><Key>k</Key><Owner><ID>abc</ID><DisplayName>me</DisplayName></Owner><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumAlgorithm>SHA1</ChecksumAlgorithm><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus></Contents>' +
        '<Contents><ETag>"e"</ETag></Contents>' +
        '<Contents><Key/><Size>0</Size></Contents>',
      false,
      '<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><ContinuationToken>t</ContinuationToken><StartAfter>s</StartAfter>',
    );
    expect(parseListObjectsV2(xml).objects).toEqual([
      { key: 'k', size: undefined, etag: undefined, lastModified: undefined },
      { key: undefined, size: undefined, etag: '"e"', lastModified: undefined },
      { key: '', size: 0, etag: undefined, lastModified: undefined },
    ]);
  });

  it('refuses a cut document as incomplete, wherever it is cut', () => {
    const xml = page(contents('x/a') + contents('x/b'), true, '<NextContinuationToken>tok</NextContinuationToken>');
    for (let cut = 0; cut < xml.length; cut++) {
      expect(refusal(xml.slice(0, cut)).incomplete, `cut at ${cut}: ${xml.slice(0, cut)}`).toBe(true);
    }
    expect(refusal(xml.slice(0, -1)).incomplete).toBe(true);
  });

  it('refuses what it does not understand, as not merely incomplete', () => {
    const bad = [
      '<Error><Code>AccessDenied</Code></Error>',
      '<ListBucketResultX></ListBucketResultX>',
      page('<Contents><Key><![CDATA[a]]></Key></Contents>'),
      page('<!-- note --><Contents><Key>a</Key></Contents>'),
      page('<Contents><Key id="1">a</Key></Contents>'),
      page('<Contents><Key>a</Key><Key>b</Key></Contents>'),
      page(contents('a&nbsp;b')),
      page(contents('a & b')),
      page(contents('&#0;')),
      page(contents('&#xD800;')),
      page(contents('a', '"e"', '-1')),
      page(contents('a', '"e"', '1.5')),
      page(contents('a', '"e"', '')),
      page(contents('a', '"e"', '1', 'yesterday')),
      page(contents('a', '"e"', '1', '2024-13-01T00:00:00Z')),
      page(contents('a%zz'), false, '<EncodingType>url</EncodingType>'),
      page(contents('a'), false, '<EncodingType>base64</EncodingType>'),
      page('stray text'),
      `${page('')}<Extra/>`,
      `${HEAD}<IsTruncated>maybe</IsTruncated>${TAIL}`,
      `${HEAD}<IsTruncated>true</IsTruncated><IsTruncated>false</IsTruncated>${TAIL}`,
      '<ListBucketResult/>',
    ];
    for (const xml of bad) expect(refusal(xml).incomplete, xml).toBe(false);
  });
});

describe('the pieces', () => {
  it('decodeText normalises line ends of raw text but keeps escaped ones', () => {
    expect(decodeText('a\r\nb\rc&#xD;')).toBe('a\nb\nc\r');
    expect(decodeText('no entities')).toBe('no entities');
  });

  it('decodeListedKey undoes form encoding and refuses a malformed escape', () => {
    expect(decodeListedKey('a+b%2Bc%20d')).toBe('a b+c d');
    expect(decodeListedKey('plain/key.txt')).toBe('plain/key.txt');
    expect(() => decodeListedKey('%E2%82')).toThrow(ListXmlError);
  });

  it('parseTimestamp reads RFC 3339 as the SDK does: fractions rounded to ms, offsets applied', () => {
    expect(parseTimestamp('2024-02-29T12:00:00Z')).toBe(Date.UTC(2024, 1, 29, 12));
    expect(parseTimestamp('2024-02-29T12:00:00.1234567Z')).toBe(Date.UTC(2024, 1, 29, 12, 0, 0, 123));
    expect(parseTimestamp('2024-02-29T12:00:00.9996Z')).toBe(Date.UTC(2024, 1, 29, 12, 0, 1, 0));
    expect(parseTimestamp('2024-02-29t12:00:00-01:30')).toBe(Date.UTC(2024, 1, 29, 13, 30));
    expect(() => parseTimestamp('2024-02-29 12:00:00Z')).toThrow(ListXmlError);
    for (const t of ['2026-11-23T17:37:37.333Z', '1999-12-31T23:59:60.5Z', '0099-01-01T00:00:00.0005+14:00', '2024-06-01T00:00:00.999999999-00:30']) {
      expect(parseTimestamp(t), t).toBe(_parseRfc3339DateTimeWithOffset(t)!.getTime());
    }
  });
});
