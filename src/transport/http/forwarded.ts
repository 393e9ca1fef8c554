// The host and scheme a client used, for the absolute URLs the server writes (discovery, info,
// registration answers, agent cards). X-Forwarded-Proto and X-Forwarded-Host are believed only
// from a trusted proxy (AMP_TRUSTED_PROXIES); from anyone else they are dropped here, so no
// handler can reflect them. AMP_PUBLIC_URL, when set, wins over all of this (relay/context.ts).

export interface ClientOrigin {
  /** Host header, or X-Forwarded-Host from a trusted proxy. */
  host: string;
  /** X-Forwarded-Proto from a trusted proxy, else empty. */
  forwardedProto: string;
}

/** The first (client-side) value of a header a chain of proxies may have appended to. */
function first(value: string): string {
  return value.split(',')[0].trim();
}

export function clientOrigin(
  host: string,
  forwardedProto: string,
  forwardedHost: string,
  fromTrustedProxy: boolean,
): ClientOrigin {
  if (!fromTrustedProxy) return { host, forwardedProto: '' };
  return { host: first(forwardedHost) || host, forwardedProto: first(forwardedProto).toLowerCase() };
}
