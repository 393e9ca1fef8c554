// The TLS certificate and key files (AMP_TLS_CERT / AMP_TLS_KEY), checked before uWS sees them:
// its SSLApp only says "App construction failed" for a missing file, a wrong passphrase or a key
// that is not the certificate's, and prompts on the terminal for the passphrase of an encrypted
// key given none. Here each case gets a sentence naming the file.

import { createPrivateKey, X509Certificate } from 'node:crypto';

export interface TlsNames {
  cert: string;
  key: string;
  passphrase: string;
}
const ENV_NAMES: TlsNames = { cert: 'AMP_TLS_CERT', key: 'AMP_TLS_KEY', passphrase: 'AMP_TLS_KEY_PASSPHRASE' };

/** Why this PEM pair cannot serve TLS, or undefined when it can; `names` are the settings as the user gave them. */
export function tlsPairProblem(
  certPem: string,
  certPath: string,
  keyPem: string,
  keyPath: string,
  passphrase: string,
  names: TlsNames = ENV_NAMES,
) {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    return `${names.cert} ${certPath} is not a PEM certificate (${(e as Error).message})`;
  }
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
  return undefined;
}
