// Talking to medrec: the same origin, the session in the HttpOnly cookie
// (__Host-medrec, never readable here), JSON in and out. A 401 from any
// call means the session ended: the app is told once and shows sign-in.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }

  /** The server refused a restricted record and offers emergency access. */
  get restricted() {
    return this.status === 403 && /emergency access/i.test(this.message);
  }
}

const handlers = { ended: () => {}, activity: () => {} };

/** ended(): a call got 401. activity(): any answer arrived. */
export function setSessionHandlers(h) {
  Object.assign(handlers, h);
}

/** The text of an OperationOutcome or of an /auth error body. */
export function messageOf(body) {
  if (!body || typeof body !== 'object') return '';
  if (body.resourceType === 'OperationOutcome') {
    return (body.issue || [])
      .filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .map((i) => i.diagnostics || i.details?.text || i.code)
      .filter(Boolean)
      .join('; ');
  }
  return body.message || body.error || '';
}

/**
 * One request. opts: method, body (sent as JSON), headers, signal,
 * noSessionCheck (a 401 is an ordinary error, e.g. at start-up).
 * Resolves {status, body, etag, location}; rejects ApiError (or an
 * AbortError when signal fires).
 */
export async function api(path, opts = {}) {
  const init = {
    method: opts.method || 'GET',
    headers: { Accept: 'application/fhir+json, application/json' },
    cache: 'no-store',
    credentials: 'same-origin',
    redirect: 'error',
    signal: opts.signal,
  };
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body);
    init.headers['Content-Type'] = path.startsWith('/fhir')
      ? 'application/fhir+json'
      : 'application/json';
  }
  Object.assign(init.headers, opts.headers || {});
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'The server cannot be reached. Check the ' +
      'network connection and try again.', null);
  }
  handlers.activity();
  const text = await res.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (res.status === 401 && !opts.noSessionCheck) {
    handlers.ended();
    throw new ApiError(401, 'Your session ended.', body);
  }
  if (!res.ok) {
    throw new ApiError(res.status,
      messageOf(body) || `The server answered ${res.status}.`, body);
  }
  return {
    status: res.status,
    body,
    etag: res.headers.get('ETag'),
    location: res.headers.get('Location'),
  };
}

/** GET a FHIR path ("/Patient?name=x"); resolves the parsed body. */
export async function fhirGet(path, signal) {
  return (await api(`/fhir${path}`, { signal })).body;
}

/** The resources of a searchset Bundle (not its outcome entries). */
export function entries(bundle) {
  return ((bundle && bundle.entry) || [])
    .map((e) => e.resource)
    .filter((r) => r && r.resourceType !== 'OperationOutcome');
}

/** A Bundle link (absolute, from the server) as a path on this origin. */
export function linkPath(bundle, relation) {
  const l = ((bundle && bundle.link) || []).find((x) => x.relation === relation);
  if (!l) return null;
  const u = new URL(l.url, window.location.href);
  return u.pathname.startsWith('/fhir/') ? u.pathname + u.search : null;
}

/** Follows a link path from linkPath; resolves the Bundle. */
export async function getPath(path, signal) {
  return (await api(path, { signal })).body;
}

/** A query string from [key, value] pairs (values are encoded). */
export function qs(pairs) {
  return pairs
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
}
