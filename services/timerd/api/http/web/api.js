// The JSON API (docs/API.md, "HTTP"), called with the token the user pasted.
// The token is kept in sessionStorage: for this tab's session only, never in
// a cookie, so no other site can make the browser send it (no CSRF surface).

const KEY = 'timer.token';

export function token() {
  return sessionStorage.getItem(KEY) || '';
}
export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}
export function clearToken() {
  sessionStorage.removeItem(KEY);
}

// An error the API answered: `status` the HTTP code, `code` the gRPC code,
// `message` the google.rpc.Status message (naming the field at fault).
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Told when a request is refused for its credentials (401).
let onUnauthenticated = () => {};
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

export function authHeaders() {
  return {'Authorization': `Bearer ${token()}`};
}

// `method` `path` (with its query), `body` an object sent as JSON.
export async function api(method, path, body, {signal} = {}) {
  const headers = authHeaders();
  const init = {method, headers, signal, cache: 'no-store', credentials: 'omit'};
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 14, 'timerd could not be reached');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = data && typeof data.message === 'string' ? data.message : `HTTP ${res.status}`;
    const err = new ApiError(res.status, data && data.code, message);
    if (res.status === 401) onUnauthenticated(err);
    throw err;
  }
  return data;
}

// A query string from an object, skipping empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.append(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// An idempotency key for a create or a run-now.
export function requestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const enc = encodeURIComponent;
