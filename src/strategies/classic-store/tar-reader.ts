/**
 * A streaming reader of tar archives (ustar, with GNU long names and PAX paths),
 * enough for `docker save` output: entries are read one after the other, and an
 * entry's body streams without being held in memory.
 */

export interface TarEntry {
  readonly name: string;
  readonly size: number;
  /** '0' file, '5' folder, '2' symlink... */
  readonly type: string;
  /** The entry's bytes; must be read to the end (or drained) before the next entry. */
  readonly body: AsyncIterable<Buffer>;
}

const BLOCK = 512;

/** Pulls exact byte counts out of a chunked source. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;

  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the source. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.fill()));
    return this.take(Math.min(n, this.buffered));
  }

  /** Reads the source to its end, dropping the bytes (what follows a tar's end marker). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.fill()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }

  /** Up to n bytes as they are available (at least one, unless the source ended). */
  async readSome(n: number): Promise<Buffer> {
    if (this.buffered === 0) await this.fill();
    const first = this.chunks[0];
    if (!first) return Buffer.alloc(0);
    return this.take(Math.min(n, first.length));
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    if (first && first.length >= n) {
      this.chunks[0] = first.subarray(n);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return all.subarray(0, n);
  }
}

function text(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/** Octal, or base-256 (first byte 0x80) for sizes beyond 8 GiB. */
function numeric(block: Buffer, start: number, length: number): number {
  const field = block.subarray(start, start + length);
  if ((field[0] ?? 0) & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    return value;
  }
  const digits = text(block, start, length).trim();
  return digits === '' ? 0 : Number.parseInt(digits, 8);
}

/** The header checksum: bytes summed with the checksum field counted as spaces (unsigned or, in old writers, signed). */
function checksumMatches(header: Buffer): boolean {
  const stored = Number.parseInt(text(header, 148, 8).trim() || 'x', 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function paxPath(records: Buffer): string | undefined {
  // Each record is "LENGTH key=value\n".
  let offset = 0;
  let path: string | undefined;
  while (offset < records.length) {
    const space = records.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number.parseInt(records.subarray(offset, space).toString('ascii'), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = records.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (record.slice(0, equals) === 'path') path = record.slice(equals + 1);
    offset += length;
  }
  return path;
}

export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<TarEntry> {
  const queue = new ByteQueue(source[Symbol.asyncIterator]());
  let longName: string | undefined;
  for (;;) {
    const header = await queue.read(BLOCK);
    if (header.length < BLOCK) {
      if (header.length === 0) return;
      throw new Error('tar stream ended inside a header');
    }
    if (header.every((b) => b === 0)) {
      // The source is read to its end, so the writing process can finish.
      await queue.drain();
      return;
    }
    // A stream that does not start where a header should (bytes lost, or not a tar) must fail, not be misread.
    if (!checksumMatches(header)) throw new Error('tar stream is not at a valid header (bad checksum)');
    const size = numeric(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (type === 'L' || type === 'x') {
      const content = await queue.read(size);
      await queue.read(padding);
      longName = type === 'L' ? text(content, 0, content.length) : (paxPath(content) ?? longName);
      continue;
    }
    if (type === 'g') {
      await queue.read(size + padding);
      continue;
    }
    const prefix = text(header, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    longName = undefined;
    let remaining = size;
    const body = async function* (): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        const chunk = await queue.readSome(Math.min(remaining, 1 << 20));
        if (chunk.length === 0) throw new Error(`tar stream ended inside ${name}`);
        remaining -= chunk.length;
        yield chunk;
      }
    };
    yield { name, size, type, body: body() };
    // Whatever the consumer left unread is skipped.
    while (remaining > 0) {
      const chunk = await queue.readSome(Math.min(remaining, 1 << 20));
      if (chunk.length === 0) throw new Error(`tar stream ended inside ${name}`);
      remaining -= chunk.length;
    }
    await queue.read(padding);
  }
}
