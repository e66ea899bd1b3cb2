// The guest side of the `wasi_experimental_http` ABI: the raw imports, and a
// thin typed layer over them that owns the pointer and buffer bookkeeping.
//
// Every import takes and returns i32. Pointers are offsets into this
// module's exported `memory`; the host writes results (a status, a handle, a
// byte count) into little buffers we hand it. AssemblyScript has no
// exceptions, so every function here returns the ABI's error code (or an
// object carrying it) and the caller decides what a failure means.

// @ts-ignore: decorator
@external("wasi_experimental_http", "req")
declare function abi_req(
  url_ptr: usize, url_len: usize,
  method_ptr: usize, method_len: usize,
  headers_ptr: usize, headers_len: usize,
  body_ptr: usize, body_len: usize,
  status_ptr: usize, handle_ptr: usize,
): u32;

// @ts-ignore: decorator
@external("wasi_experimental_http", "close")
declare function abi_close(handle: u32): u32;

// @ts-ignore: decorator
@external("wasi_experimental_http", "body_read")
declare function abi_body_read(
  handle: u32, buf_ptr: usize, buf_len: usize, nread_ptr: usize,
): u32;

// @ts-ignore: decorator
@external("wasi_experimental_http", "header_get")
declare function abi_header_get(
  handle: u32, name_ptr: usize, name_len: usize,
  value_ptr: usize, value_len: usize, written_ptr: usize,
): u32;

// @ts-ignore: decorator
@external("wasi_experimental_http", "headers_get_all")
declare function abi_headers_get_all(
  handle: u32, buf_ptr: usize, buf_len: usize, written_ptr: usize,
): u32;

/** The ABI's error codes. 0 is success; everything else is a failed call. */
export namespace HttpError {
  export const SUCCESS: u32 = 0;
  export const INVALID_HANDLE: u32 = 1;
  export const MEMORY_NOT_FOUND: u32 = 2;
  export const MEMORY_ACCESS: u32 = 3;
  export const BUFFER_TOO_SMALL: u32 = 4;
  export const HEADER_NOT_FOUND: u32 = 5;
  export const UTF8: u32 = 6;
  export const DESTINATION_NOT_ALLOWED: u32 = 7;
  export const INVALID_METHOD: u32 = 8;
  export const INVALID_ENCODING: u32 = 9;
  export const INVALID_URL: u32 = 10;
  export const REQUEST_ERROR: u32 = 11;
  export const RUNTIME_ERROR: u32 = 12;
  export const TOO_MANY_SESSIONS: u32 = 13;

  /** What a code means, for messages a person reads. */
  export function describe(code: u32): string {
    switch (code) {
      case SUCCESS: return "success";
      case INVALID_HANDLE: return "invalid handle";
      case MEMORY_NOT_FOUND: return "memory not found";
      case MEMORY_ACCESS: return "memory access error";
      case BUFFER_TOO_SMALL: return "buffer too small";
      case HEADER_NOT_FOUND: return "header not found";
      case UTF8: return "UTF-8 error";
      case DESTINATION_NOT_ALLOWED: return "destination not allowed";
      case INVALID_METHOD: return "invalid method";
      case INVALID_ENCODING: return "invalid encoding";
      case INVALID_URL: return "invalid URL";
      case REQUEST_ERROR: return "request error";
      case RUNTIME_ERROR: return "runtime error";
      case TOO_MANY_SESSIONS: return "too many sessions";
      default: return "unknown error";
    }
  }
}

/** A failed ABI call: which import, and the code it returned. */
export class CallError {
  constructor(public call: string, public code: u32) {}

  toString(): string {
    return "wasi_experimental_http." + this.call + " returned error " +
      this.code.toString() + " (" + HttpError.describe(this.code) + ")";
  }
}

/** The bytes of `text` in UTF-8, which is what the host expects. */
function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/** Where a buffer's bytes start in linear memory (null: offset 0). */
function ptr(buffer: ArrayBuffer | null): usize {
  return buffer === null ? 0 : changetype<usize>(buffer);
}

function len(buffer: ArrayBuffer | null): usize {
  return buffer === null ? 0 : <usize>buffer.byteLength;
}

/** The largest header value or header block we grow a buffer to. */
const MAX_HEADER_BYTES: i32 = 64 * 1024;

/**
 * The next buffer size after error 4: the length the host says it needs
 * (wasmdapr writes it to `written_ptr`; other hosts may leave it 0), at
 * least double the last size, at most `MAX_HEADER_BYTES`.
 */
function grow(size: i32, needed: u32): i32 {
  let next = size * 2;
  if (needed > <u32>next) next = needed > <u32>MAX_HEADER_BYTES ? MAX_HEADER_BYTES : <i32>needed;
  return next > MAX_HEADER_BYTES ? MAX_HEADER_BYTES : next;
}

/** The chunk size of one `body_read`. */
const BODY_CHUNK: i32 = 16 * 1024;

/**
 * An open response: its status and the host's handle to its headers and
 * body. It must be closed exactly once, whatever happens in between; the
 * host caps the responses an instance may hold open.
 */
export class Response {
  private closed: bool = false;

  constructor(public status: u16, public handle: u32) {}

  /**
   * Reads the whole body, chunk by chunk, until the host reports 0 bytes.
   * On failure `error` is set and the bytes read so far are dropped.
   */
  readBody(): BodyResult {
    const chunk = new ArrayBuffer(BODY_CHUNK);
    const nread = new ArrayBuffer(4);
    // Chunks are kept and joined once at the end, so a large body is copied
    // twice in all rather than once per chunk.
    const parts = new Array<ArrayBuffer>();
    let total: i32 = 0;
    while (true) {
      const code = abi_body_read(this.handle, ptr(chunk), len(chunk), ptr(nread));
      if (code != HttpError.SUCCESS) {
        return new BodyResult(null, new CallError("body_read", code));
      }
      const n = load<u32>(ptr(nread));
      if (n == 0) break;
      if (n > <u32>BODY_CHUNK) {
        // A host that claims more than we asked for is broken; trusting it
        // would read past our buffer.
        return new BodyResult(null, new CallError("body_read", HttpError.RUNTIME_ERROR));
      }
      parts.push(chunk.slice(0, <i32>n));
      total += <i32>n;
    }
    const body = new Uint8Array(total);
    let at: i32 = 0;
    for (let i = 0; i < parts.length; i++) {
      body.set(Uint8Array.wrap(parts[i]), at);
      at += parts[i].byteLength;
    }
    return new BodyResult(body.buffer, null);
  }

  /**
   * The value of header `name` (matched case-insensitively by the host), or
   * null with `found == false` when the response has no such header. A
   * buffer the host finds too small is doubled and the call repeated.
   */
  header(name: string): HeaderResult {
    const nameBytes = utf8(name);
    const written = new ArrayBuffer(4);
    let size: i32 = 256;
    while (true) {
      const value = new ArrayBuffer(size);
      const code = abi_header_get(
        this.handle, ptr(nameBytes), len(nameBytes), ptr(value), len(value), ptr(written),
      );
      if (code == HttpError.SUCCESS) {
        const n = load<u32>(ptr(written));
        if (n > <u32>size) {
          return new HeaderResult(null, new CallError("header_get", HttpError.RUNTIME_ERROR));
        }
        return new HeaderResult(String.UTF8.decode(value.slice(0, <i32>n)), null);
      }
      if (code == HttpError.HEADER_NOT_FOUND) return new HeaderResult(null, null);
      if (code != HttpError.BUFFER_TOO_SMALL || size >= MAX_HEADER_BYTES) {
        return new HeaderResult(null, new CallError("header_get", code));
      }
      size = grow(size, load<u32>(ptr(written)));
    }
  }

  /**
   * Every header as the host lists them, `name:value` lines separated by
   * `\n`. Grows its buffer like `header`.
   */
  headers(): HeaderResult {
    const written = new ArrayBuffer(4);
    let size: i32 = 1024;
    while (true) {
      const buf = new ArrayBuffer(size);
      const code = abi_headers_get_all(this.handle, ptr(buf), len(buf), ptr(written));
      if (code == HttpError.SUCCESS) {
        const n = load<u32>(ptr(written));
        if (n > <u32>size) {
          return new HeaderResult(null, new CallError("headers_get_all", HttpError.RUNTIME_ERROR));
        }
        return new HeaderResult(String.UTF8.decode(buf.slice(0, <i32>n)), null);
      }
      if (code != HttpError.BUFFER_TOO_SMALL || size >= MAX_HEADER_BYTES) {
        return new HeaderResult(null, new CallError("headers_get_all", code));
      }
      size = grow(size, load<u32>(ptr(written)));
    }
  }

  /** Frees the host's side of the response. A second call is a no-op. */
  close(): CallError | null {
    if (this.closed) return null;
    this.closed = true;
    const code = abi_close(this.handle);
    return code == HttpError.SUCCESS ? null : new CallError("close", code);
  }
}

/** A body read to its end, or the failure that stopped it. */
export class BodyResult {
  constructor(public bytes: ArrayBuffer | null, public error: CallError | null) {}
}

/** A header value (null when absent), or the failure to read it. */
export class HeaderResult {
  constructor(public value: string | null, public error: CallError | null) {}
}

/** The response to a request, or the failure that prevented it. */
export class RequestResult {
  constructor(public response: Response | null, public error: CallError | null) {}
}

/**
 * Sends one request. `headers` is the ABI's `Name:value\n` block. An HTTP
 * error status is a response, not a failure: only the ABI's codes fail.
 */
export function request(
  method: string, url: string, headers: string, body: ArrayBuffer | null,
): RequestResult {
  const urlBytes = utf8(url);
  const methodBytes = utf8(method);
  const headerBytes = utf8(headers);
  const status = new ArrayBuffer(2);
  const handle = new ArrayBuffer(4);
  const code = abi_req(
    ptr(urlBytes), len(urlBytes),
    ptr(methodBytes), len(methodBytes),
    ptr(headerBytes), len(headerBytes),
    ptr(body), len(body),
    ptr(status), ptr(handle),
  );
  if (code != HttpError.SUCCESS) {
    return new RequestResult(null, new CallError("req", code));
  }
  return new RequestResult(new Response(load<u16>(ptr(status)), load<u32>(ptr(handle))), null);
}
