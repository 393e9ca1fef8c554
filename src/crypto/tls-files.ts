// The TLS certificate and key files (AMP_TLS_CERT / AMP_TLS_KEY), checked before uWS sees them:
// its SSLApp only says "App construction failed" for a missing file, a wrong passphrase or a key
// that is not the certificate's, and prompts on the terminal for the passphrase of an encrypted
// key given none. Here each case gets a sentence naming the file. Every certificate block of the
// cert file must parse (the server's certificate, then its chain), and the server's certificate must
// be valid now: an expired or not yet valid one is refused with its dates.

import { createPrivateKey, X509Certificate } from 'node:crypto';

export interface TlsNames {
  cert: string;
  key: string;
  passphrase: string;
}
const ENV_NAMES: TlsNames = { cert: 'AMP_TLS_CERT', key: 'AMP_TLS_KEY', passphrase: 'AMP_TLS_KEY_PASSPHRASE' };

const BEGIN = '-----BEGIN CERTIFICATE-----';
const CERT_BLOCK_RE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

/** The certificates of a PEM file, the server's first; or why one of them does not parse. */
export function parseCertificates(
  certPem: string,
  certPath: string,
  name = ENV_NAMES.cert,
): X509Certificate[] | string {
  const blocks = certPem.match(CERT_BLOCK_RE) ?? [];
  const begins = certPem.split(BEGIN).length - 1;
  if (blocks.length === 0) {
    try {
      return [new X509Certificate(certPem)];
    } catch (e) {
      return `${name} ${certPath} is not a PEM certificate (${(e as Error).message})`;
    }
  }
  const certs: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block));
    } catch (e) {
      return `${name} ${certPath}: certificate ${i + 1} of ${begins} is not a valid PEM certificate (${(e as Error).message})`;
    }
  }
  if (begins !== blocks.length)
    return `${name} ${certPath}: certificate ${blocks.length + 1} of ${begins} has no -----END CERTIFICATE----- line`;
  return certs;
}

const day = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

/** The certificate's validity as ms since the epoch. */
export function validity(cert: X509Certificate): { from: number; to: number } {
  return { from: Date.parse(cert.validFrom), to: Date.parse(cert.validTo) };
}

/** Why the server's certificate is not valid at `now` (expired, or not valid yet), naming its dates. */
function validityProblem(cert: X509Certificate, certPath: string, name: string, now: number): string | undefined {
  const { from, to } = validity(cert);
  const dates = `valid from ${day(from)} to ${day(to)}`;
  if (now < from) return `${name} ${certPath} is not valid yet (${dates}; now ${day(now)})`;
  if (now > to) return `${name} ${certPath} has expired (${dates}; now ${day(now)})`;
  return undefined;
}

/** A warning when the server's certificate expires within `days` days, else undefined. */
export function expiresSoon(certPem: string, certPath: string, days = 14, now = Date.now()): string | undefined {
  const certs = parseCertificates(certPem, certPath);
  if (typeof certs === 'string') return undefined;
  const { to } = validity(certs[0]);
  if (to < now || to - now > days * DAY_MS) return undefined;
  return `the TLS certificate ${certPath} expires in ${Math.ceil((to - now) / DAY_MS)} day(s), on ${day(to)}: renew it`;
}

/**
 * Why this PEM pair cannot serve TLS, or undefined when it can; `names` are the settings as the
 * user gave them. Only the server's own certificate must be valid now: a chain may carry an expired
 * cross-signed certificate that clients skip.
 */
export function tlsPairProblem(
  certPem: string,
  certPath: string,
  keyPem: string,
  keyPath: string,
  passphrase: string,
  names: TlsNames = ENV_NAMES,
  now = Date.now(),
) {
  const certs = parseCertificates(certPem, certPath, names.cert);
  if (typeof certs === 'string') return certs;
  const cert = certs[0];
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(passphrase ? { key: keyPem, passphrase } : { key: keyPem, passphrase: '' });
  } catch (e) {
    const msg = (e as Error).message;
    if (/passphrase|decrypt|bad decrypt/i.test(msg) || keyPem.includes('ENCRYPTED'))
      return passphrase
        ? `${names.key} ${keyPath} cannot be decrypted with ${names.passphrase} (wrong passphrase?)`
        : `${names.key} ${keyPath} is encrypted: set AMP_TLS_KEY_PASSPHRASE (or --tls-key-passphrase)`;
    return `${names.key} ${keyPath} is not a PEM private key (${msg})`;
  }
  if (!cert.checkPrivateKey(key)) return `${names.key} ${keyPath} is not the key of the certificate ${certPath}`;
  return validityProblem(cert, certPath, names.cert, now);
}
