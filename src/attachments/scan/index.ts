// Attachment scanning (spec §22 "Scan", "Antivirus"): the one door the rest of the server uses.

export { clamdPing, parseClamdHost } from './clamd.js';
export { createScanner, type ScannerOptions } from './scanner.js';
export type { ClamdTarget, ScanJob, ScanOutcome, Scanner } from './types.js';
