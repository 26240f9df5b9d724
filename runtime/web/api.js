// The HTTP API of the daemon that served this page (DESIGN.md section 9): JSON calls with
// the bearer token when one is set, and the live event stream read through fetch (an
// EventSource cannot send the Authorization header).

const TOKEN_KEY = "sprig.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra) {
  const h = Object.assign({}, extra);
  const t = token();
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

// Calls METHOD PATH with an optional JSON body; resolves to the parsed answer, rejects
// with an ApiError carrying the server's own sentence ({"error": ...}).
export async function call(method, path, body) {
  const init = { method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "the gateway cannot be reached (" + e.message + ")");
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  if (!res.ok) {
    const msg = json && typeof json.error === "string" ? json.error : res.status + " " + res.statusText;
    throw new ApiError(res.status, msg);
  }
  return json;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

export const enc = encodeURIComponent;

// Reads GET /v1/events until stopped: onOpen() once the answer starts, onEvent(data) per
// `points` event, onClose(err) when the stream ends (err: an ApiError or undefined).
// Returns a function that stops it.
export function events(onOpen, onEvent, onClose) {
  const ctl = new AbortController();
  let stopped = false;
  (async () => {
    let err;
    try {
      const res = await fetch("/v1/events", { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal });
      if (!res.ok) {
        let msg = res.status + " " + res.statusText;
        try {
          msg = (await res.json()).error || msg;
        } catch (e) { /* not JSON */ }
        throw new ApiError(res.status, msg);
      }
      onOpen();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        // Events are separated by a blank line; only `data:` lines matter here.
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let data = "";
          let type = "message";
          for (const line of block.split("\n")) {
            if (line.startsWith("data:")) data += line.slice(line[5] === " " ? 6 : 5);
            else if (line.startsWith("event:")) type = line.slice(6).trim();
          }
          if (type === "points" && data) {
            try {
              onEvent(JSON.parse(data));
            } catch (e) {
              console.error("sprig: bad event", e, data);
            }
          }
        }
      }
    } catch (e) {
      err = e.name === "AbortError" ? undefined : e;
    }
    if (!stopped) onClose(err);
  })();
  return () => {
    stopped = true;
    ctl.abort();
  };
}
