// A small client of the Dapr state API (HTTP API v1.0) over the
// `wasi_experimental_http` ABI.
//
// Values are JSON text: what the caller passes is sent as the value as is,
// and what Dapr returns is handed back as is, so the app decides how to
// parse it. Every call returns its failure instead of aborting, naming the
// operation, the ABI call and code or the HTTP status and Dapr's error body.

import { CallError, request } from "./experimental_http";

/** A failed state operation: which one, and why. */
export class DaprError {
  constructor(public operation: string, public message: string) {}

  toString(): string {
    return this.operation + ": " + this.message;
  }
}

/** One key and its value (JSON text) for `saveBulkState`. */
export class StateItem {
  constructor(public key: string, public value: string) {}
}

/**
 * The result of `getState`: the value (JSON text), its ETag and the
 * metadata Dapr returns as `metadata.<name>` headers (e.g.
 * `ttlExpireTime`), or a null value when Dapr has no such key (it answers
 * 204), or the failure.
 */
export class GetStateResult {
  constructor(
    public value: string | null,
    public etag: string | null,
    public metadata: Map<string, string>,
    public error: DaprError | null,
  ) {}
}

/** What came back from one HTTP exchange with the sidecar. */
class Exchange {
  constructor(
    public status: u16,
    public body: string,
    public etag: string | null,
    public metadata: Map<string, string>,
    public error: DaprError | null,
  ) {}
}

/** Dapr's default HTTP port, used when `DAPR_HTTP_PORT` is not set. */
export const DEFAULT_HTTP_PORT: u16 = 3500;

/** The sidecar's address and the token (if any) of a Dapr HTTP client. */
export class StateClient {
  private base: string;

  /**
   * A client of the sidecar on `127.0.0.1:port`. With a `token`, every
   * request carries it in `dapr-api-token`, as Dapr requires when its
   * `DAPR_API_TOKEN` is set.
   */
  constructor(port: u16, private token: string | null = null) {
    this.base = "http://127.0.0.1:" + port.toString();
  }

  /** `POST /v1.0/state/{store}` with one item. */
  saveState(store: string, key: string, json: string): DaprError | null {
    const items = new Array<StateItem>();
    items.push(new StateItem(key, json));
    return this.save("saveState(" + store + ", " + key + ")", store, items);
  }

  /** `POST /v1.0/state/{store}` with every item, in one request. */
  saveBulkState(store: string, items: StateItem[]): DaprError | null {
    const keys = new Array<string>();
    for (let i = 0; i < items.length; i++) keys.push(items[i].key);
    return this.save("saveBulkState(" + store + ", [" + keys.join(", ") + "])", store, items);
  }

  /** `GET /v1.0/state/{store}/{key}`: 200 with the value, 204 when absent. */
  getState(store: string, key: string): GetStateResult {
    const operation = "getState(" + store + ", " + key + ")";
    const x = this.exchange(operation, "GET", stateUrl(store, key), null, true);
    if (x.error !== null) return new GetStateResult(null, null, x.metadata, x.error);
    if (x.status == 204) return new GetStateResult(null, null, x.metadata, null);
    return new GetStateResult(x.body, x.etag, x.metadata, null);
  }

  /** `DELETE /v1.0/state/{store}/{key}`; deleting an absent key succeeds. */
  deleteState(store: string, key: string): DaprError | null {
    const operation = "deleteState(" + store + ", " + key + ")";
    return this.exchange(operation, "DELETE", stateUrl(store, key), null, false).error;
  }

  private save(operation: string, store: string, items: StateItem[]): DaprError | null {
    let body = "[";
    for (let i = 0; i < items.length; i++) {
      if (i > 0) body += ",";
      body += "{\"key\":" + jsonString(items[i].key) + ",\"value\":" + items[i].value + "}";
    }
    body += "]";
    return this.exchange(operation, "POST", "/v1.0/state/" + encodePathSegment(store), body, false)
      .error;
  }

  /**
   * One request and its whole response. The response is closed on every
   * path, and the first failure wins: a failed `close` is reported only when
   * nothing failed before it. Any 2xx is success (Dapr answers writes and
   * deletes with 204); anything else is a failure carrying Dapr's body.
   */
  private exchange(
    operation: string, method: string, path: string, body: string | null, wantHeaders: bool,
  ): Exchange {
    const url = this.base + path;
    let headers = "";
    if (body !== null) headers += "Content-Type:application/json\n";
    const token = this.token;
    if (token !== null) headers += "dapr-api-token:" + token + "\n";
    const bytes: ArrayBuffer | null = body === null ? null : String.UTF8.encode(body);

    const sent = request(method, url, headers, bytes);
    const sendError = sent.error;
    if (sendError !== null) return failed(operation, method + " " + url + ": " + sendError.toString());
    const response = sent.response!;

    let error: CallError | null = null;
    let text = "";
    const read = response.readBody();
    const readError = read.error;
    if (readError !== null) {
      error = readError;
    } else {
      text = String.UTF8.decode(read.bytes!);
    }
    let etag: string | null = null;
    const metadata = new Map<string, string>();
    if (error === null && wantHeaders && response.status == 200) {
      const header = response.header("etag");
      error = header.error;
      etag = header.value;
    }
    if (error === null && wantHeaders && response.status == 200) {
      const all = response.headers();
      error = all.error;
      if (error === null) collectMetadata(all.value!, metadata);
    }
    const closeError = response.close();
    if (error === null) error = closeError;
    if (error !== null) return failed(operation, method + " " + url + ": " + error.toString());

    if (response.status < 200 || response.status > 299) {
      return failed(
        operation,
        method + " " + url + " answered HTTP " + response.status.toString() +
          (text.length > 0 ? ": " + text : ""),
      );
    }
    return new Exchange(response.status, text, etag, metadata, null);
  }
}

function failed(operation: string, message: string): Exchange {
  return new Exchange(0, "", null, new Map<string, string>(), new DaprError(operation, message));
}

/**
 * Adds the `metadata.<name>: value` headers of a `name:value\n` block to
 * `into`, keyed by `<name>`. Header names are case-insensitive, so the
 * prefix is matched in any case.
 */
function collectMetadata(block: string, into: Map<string, string>): void {
  const lines = block.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.substring(0, colon).trim();
    if (name.length > 9 && name.substring(0, 9).toLowerCase() == "metadata.") {
      into.set(name.substring(9), line.substring(colon + 1).trim());
    }
  }
}

function stateUrl(store: string, key: string): string {
  return "/v1.0/state/" + encodePathSegment(store) + "/" + encodePathSegment(key);
}

const HEX = "0123456789ABCDEF";

/**
 * `segment` percent-encoded for a URL path: keys may hold `/`, `?`, `#`,
 * spaces or non-ASCII text, which must not change the path Dapr routes.
 */
export function encodePathSegment(segment: string): string {
  const bytes = Uint8Array.wrap(String.UTF8.encode(segment));
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    const unreserved =
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
      b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e;
    if (unreserved) {
      out += String.fromCharCode(b);
    } else {
      out += "%" + HEX.charAt(b >> 4) + HEX.charAt(b & 0xf);
    }
  }
  return out;
}

/** `text` as a JSON string literal, quoted and escaped. */
export function jsonString(text: string): string {
  let out = "\"";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 0xf);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}
