// What a file's first bytes say it is, and whether that fits the type its uploader declared.
// Pure functions over a header buffer: the worker calls them, tests call them directly.

/** Bytes of the file's start that detection looks at (every signature below fits in it). */
export const HEADER_BYTES = 64;

/** Declared types refused outright: programs and installers, whatever the bytes are. */
export const BLOCKED_MIME_TYPES: ReadonlySet<string> = new Set([
  'application/x-executable',
  'application/x-elf',
  'application/x-sharedlib',
  'application/x-msdownload',
  'application/x-dosexec',
  'application/vnd.microsoft.portable-executable',
  'application/x-mach-binary',
  'application/x-msi',
  'application/x-ms-installer',
  'application/java-archive',
  'application/x-java-archive',
  'application/java-vm',
  'application/x-sh',
  'application/x-shellscript',
  'application/x-csh',
  'application/x-bat',
  'application/x-msdos-program',
  'application/vnd.android.package-archive',
  'application/x-apple-diskimage',
]);

/** Executable formats, refused whatever type is declared. */
type Executable = 'elf' | 'pe' | 'mach-o' | 'java-class-or-mach-o-fat' | 'shebang';

interface Format {
  name: string;
  /** Declared types this format may be sent as (application/octet-stream fits every format). */
  mimes: readonly string[];
  test: (h: Uint8Array) => boolean;
}

const at = (h: Uint8Array, offset: number, bytes: readonly number[]) =>
  h.length >= offset + bytes.length && bytes.every((b, i) => h[offset + i] === b);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const startsAscii = (h: Uint8Array, offset: number, s: string) => at(h, offset, ascii(s));

const OOXML = [
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text',
  'application/vnd.oasis.opendocument.spreadsheet',
  'application/vnd.oasis.opendocument.presentation',
  'application/epub+zip',
];
const OLE2 = ['application/msword', 'application/vnd.ms-excel', 'application/vnd.ms-powerpoint'];
const ISO_MEDIA = ['video/mp4', 'audio/mp4', 'video/quicktime', 'image/heic', 'image/avif', 'audio/x-m4a'];

/** Data formats known by their magic bytes. A declared type listed here needs these bytes. */
export const FORMATS: readonly Format[] = [
  { name: 'png', mimes: ['image/png'], test: (h) => at(h, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { name: 'jpeg', mimes: ['image/jpeg', 'image/jpg'], test: (h) => at(h, 0, [0xff, 0xd8, 0xff]) },
  { name: 'gif', mimes: ['image/gif'], test: (h) => startsAscii(h, 0, 'GIF87a') || startsAscii(h, 0, 'GIF89a') },
  { name: 'webp', mimes: ['image/webp'], test: (h) => startsAscii(h, 0, 'RIFF') && startsAscii(h, 8, 'WEBP') },
  { name: 'wav', mimes: ['audio/wav', 'audio/x-wav', 'audio/wave'], test: (h) => riff(h, 'WAVE') },
  {
    name: 'tiff',
    mimes: ['image/tiff'],
    test: (h) => at(h, 0, [0x49, 0x49, 0x2a, 0]) || at(h, 0, [0x4d, 0x4d, 0, 0x2a]),
  },
  { name: 'pdf', mimes: ['application/pdf'], test: (h) => startsAscii(h, 0, '%PDF-') },
  {
    name: 'zip',
    mimes: ['application/zip', 'application/x-zip-compressed', ...OOXML],
    test: (h) => at(h, 0, [0x50, 0x4b, 0x03, 0x04]) || at(h, 0, [0x50, 0x4b, 0x05, 0x06]),
  },
  { name: 'gzip', mimes: ['application/gzip', 'application/x-gzip'], test: (h) => at(h, 0, [0x1f, 0x8b, 0x08]) },
  { name: 'bzip2', mimes: ['application/x-bzip2'], test: (h) => startsAscii(h, 0, 'BZh') && at(h, 4, [0x31, 0x41]) },
  { name: 'xz', mimes: ['application/x-xz'], test: (h) => at(h, 0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { name: 'zstd', mimes: ['application/zstd'], test: (h) => at(h, 0, [0x28, 0xb5, 0x2f, 0xfd]) },
  {
    name: '7z',
    mimes: ['application/x-7z-compressed'],
    test: (h) => at(h, 0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]),
  },
  { name: 'ole2', mimes: OLE2, test: (h) => at(h, 0, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]) },
  { name: 'ogg', mimes: ['audio/ogg', 'video/ogg', 'application/ogg'], test: (h) => startsAscii(h, 0, 'OggS') },
  { name: 'flac', mimes: ['audio/flac', 'audio/x-flac'], test: (h) => startsAscii(h, 0, 'fLaC') },
  { name: 'iso-media', mimes: ISO_MEDIA, test: (h) => startsAscii(h, 4, 'ftyp') },
  { name: 'sqlite', mimes: ['application/vnd.sqlite3', 'application/x-sqlite3'], test: (h) => sqlite(h) },
  { name: 'wasm', mimes: ['application/wasm'], test: (h) => at(h, 0, [0x00, 0x61, 0x73, 0x6d]) },
];

function riff(h: Uint8Array, kind: string): boolean {
  return startsAscii(h, 0, 'RIFF') && startsAscii(h, 8, kind);
}

function sqlite(h: Uint8Array): boolean {
  return startsAscii(h, 0, 'SQLite format 3') && h[15] === 0;
}

/** Which executable format the header starts with, if any. */
export function executableKind(h: Uint8Array): Executable | undefined {
  if (at(h, 0, [0x7f, 0x45, 0x4c, 0x46])) return 'elf';
  // 'MZ' alone also starts ordinary words; a DOS/PE header has NUL bytes in its first 64 bytes,
  // a text never does.
  if (startsAscii(h, 0, 'MZ') && h.length >= HEADER_BYTES && h.subarray(2, HEADER_BYTES).includes(0)) return 'pe';
  const machO = [
    [0xfe, 0xed, 0xfa, 0xce],
    [0xfe, 0xed, 0xfa, 0xcf],
    [0xce, 0xfa, 0xed, 0xfe],
    [0xcf, 0xfa, 0xed, 0xfe],
  ];
  if (machO.some((m) => at(h, 0, m))) return 'mach-o';
  // CAFEBABE opens both Mach-O universal binaries and Java class files: code either way.
  if (at(h, 0, [0xca, 0xfe, 0xba, 0xbe])) return 'java-class-or-mach-o-fat';
  if (startsAscii(h, 0, '#!')) return 'shebang';
  return undefined;
}

/** The data format the header starts with, if one is known. */
export function detectFormat(h: Uint8Array): Format | undefined {
  return FORMATS.find((f) => f.test(h));
}

/** 'Text/Plain; charset=utf-8' -> 'text/plain'. */
export function baseMime(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}

const TEXT_APPLICATION = new Set([
  'application/json',
  'application/xml',
  'application/yaml',
  'application/x-yaml',
  'application/toml',
  'application/x-ndjson',
  'application/javascript',
  'application/ecmascript',
  'application/sql',
  'application/rtf',
  'application/x-tex',
]);

/** Declared as text: its bytes must be UTF-8 without NUL, and it is read for injection patterns. */
export function isTextMime(mime: string): boolean {
  return mime.startsWith('text/') || TEXT_APPLICATION.has(mime) || /\+(json|xml|yaml)$/.test(mime);
}

/**
 * Does a header fit the declared type? A known format must be declared as one of its types (or
 * application/octet-stream); a type that names a known format must carry its magic bytes.
 */
export function typeFits(mime: string, h: Uint8Array): boolean {
  const found = detectFormat(h);
  if (found) return mime === 'application/octet-stream' || found.mimes.includes(mime);
  return !FORMATS.some((f) => f.mimes.includes(mime));
}
