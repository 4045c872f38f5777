// Ghostline's settings as the extension reads them and as the server receives them (docs/protocol.md).
// No `vscode` import: unit-tested under plain Node. Defaults, choices and ranges come from package.json's
// `contributes.configuration`, the one definition (tests/test_vocabulary.py holds the server and docs to it).
import manifest from "../../package.json";

export type Multiline = "auto" | "always" | "never";
export type FilterAggressiveness = "off" | "low" | "medium" | "high";
export type TelemetryLevel = "off" | "metrics" | "training";
export type RemoteTemplate = "qwen" | "starcoder2" | "deepseek" | "codellama" | "codegemma";

/** The settings the server understands (sent in initializationOptions and didChangeConfiguration). */
export interface ServerSettings {
  enable: boolean;
  languages: Record<string, boolean>;
  model: string;
  maxTokens: number;
  multiline: Multiline;
  debounceMs: number;
  filterAggressiveness: FilterAggressiveness;
  telemetryLevel: TelemetryLevel;
  remoteUrl: string;
  remoteModel: string;
  remoteTemplate: RemoteTemplate;
  remoteTimeoutMs: number;
  remoteLogprobs: boolean;
}

/** Settings only the extension uses (where the server lives); never sent to the server. */
export interface ClientSettings {
  pythonPath: string;
  serverRoot: string;
}

export type GhostlineSettings = ServerSettings & ClientSettings;

/** What the server gets: the server settings plus VS Code's own telemetry switch. */
export type ServerPayload = ServerSettings & { clientTelemetryEnabled: boolean };

interface Spec { default: unknown; enum?: string[]; minimum?: number; maximum?: number }

const SPECS: Record<string, Spec> = Object.fromEntries(
  manifest.contributes.configuration.flatMap((section) => Object.entries(section.properties))
    .map(([key, spec]) => [key.replace(/^ghostline\./, ""), spec as Spec]),
);

export const DEFAULTS: Readonly<GhostlineSettings> = Object.freeze(
  Object.fromEntries(Object.entries(SPECS).map(([key, spec]) => [key, spec.default])) as unknown as GhostlineSettings,
);

export const SERVER_KEYS: readonly (keyof ServerSettings)[] = [
  "enable", "languages", "model", "maxTokens", "multiline", "debounceMs", "filterAggressiveness", "telemetryLevel",
  "remoteUrl", "remoteModel", "remoteTemplate", "remoteTimeoutMs", "remoteLogprobs",
];

/** Settings whose change needs a new server process (the others are applied live by the server). */
export const RESTART_KEYS: readonly (keyof ClientSettings)[] = ["pythonPath", "serverRoot"];

const CHOICES = {
  multiline: SPECS.multiline.enum ?? [],
  filterAggressiveness: SPECS.filterAggressiveness.enum ?? [],
  telemetryLevel: SPECS.telemetryLevel.enum ?? [],
  remoteTemplate: SPECS.remoteTemplate.enum ?? [],
};

const RANGES = {
  maxTokens: [SPECS.maxTokens.minimum ?? 0, SPECS.maxTokens.maximum ?? 0],
  debounceMs: [SPECS.debounceMs.minimum ?? 0, SPECS.debounceMs.maximum ?? 0],
  remoteTimeoutMs: [SPECS.remoteTimeoutMs.minimum ?? 0, SPECS.remoteTimeoutMs.maximum ?? 0],
};

function choice<K extends keyof typeof CHOICES>(key: K, value: unknown): GhostlineSettings[K] {
  const allowed = CHOICES[key] as readonly string[];
  return (typeof value === "string" && allowed.includes(value) ? value : DEFAULTS[key]) as GhostlineSettings[K];
}

/** The server's rule: an integer within the range, else the default. */
function int(key: keyof typeof RANGES, value: unknown): number {
  const [lo, hi] = RANGES[key];
  const ok = typeof value === "number" && Number.isInteger(value) && value >= lo && value <= hi;
  return ok ? value : DEFAULTS[key];
}

function languages(value: unknown): Record<string, boolean> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return {};
  const out: Record<string, boolean> = {};
  for (const [lang, on] of Object.entries(value as Record<string, unknown>)) {
    if (typeof on === "boolean") out[lang] = on;
  }
  return out;
}

/**
 * Normalizes whatever the configuration holds (user JSON can be anything) into well-typed settings.
 * Out-of-range or fractional numbers and unknown choices fall back to the default (as on the server), so the
 * extension's own behaviour (debounce, enablement) never depends on a malformed value.
 */
export function normalizeSettings(raw: Partial<Record<keyof GhostlineSettings, unknown>> | undefined): GhostlineSettings {
  const r = raw ?? {};
  const str = (v: unknown, d: string) => (typeof v === "string" ? v.trim() : d);
  return {
    enable: typeof r.enable === "boolean" ? r.enable : DEFAULTS.enable,
    languages: languages(r.languages),
    model: str(r.model, DEFAULTS.model),
    maxTokens: int("maxTokens", r.maxTokens),
    multiline: choice("multiline", r.multiline),
    debounceMs: int("debounceMs", r.debounceMs),
    filterAggressiveness: choice("filterAggressiveness", r.filterAggressiveness),
    telemetryLevel: choice("telemetryLevel", r.telemetryLevel),
    remoteUrl: str(r.remoteUrl, DEFAULTS.remoteUrl),
    remoteModel: str(r.remoteModel, DEFAULTS.remoteModel),
    remoteTemplate: choice("remoteTemplate", r.remoteTemplate),
    remoteTimeoutMs: int("remoteTimeoutMs", r.remoteTimeoutMs),
    remoteLogprobs: typeof r.remoteLogprobs === "boolean" ? r.remoteLogprobs : DEFAULTS.remoteLogprobs,
    pythonPath: str(r.pythonPath, DEFAULTS.pythonPath),
    serverRoot: str(r.serverRoot, DEFAULTS.serverRoot),
  };
}

/** The initializationOptions object: `{...settings, clientTelemetryEnabled}`. */
export function serverPayload(settings: GhostlineSettings, clientTelemetryEnabled: boolean): ServerPayload {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) out[key] = settings[key];
  out.clientTelemetryEnabled = clientTelemetryEnabled;
  return out as unknown as ServerPayload;
}

/** The workspace/didChangeConfiguration params: `{settings: {ghostline: {...settings, clientTelemetryEnabled}}}`. */
export function didChangeConfigurationParams(settings: GhostlineSettings, clientTelemetryEnabled: boolean) {
  return { settings: { ghostline: serverPayload(settings, clientTelemetryEnabled) } };
}

/** Same rule as the server: a language entry wins, else `"*"`, and the master switch must be on. */
export function isEnabledFor(settings: Pick<ServerSettings, "enable" | "languages">, languageId: string): boolean {
  if (!settings.enable) return false;
  const langs = settings.languages ?? {};
  if (Object.prototype.hasOwnProperty.call(langs, languageId)) return langs[languageId] === true;
  return langs["*"] !== false;
}

/** Which of the changed keys need the server process restarted. */
export function needsRestart(before: GhostlineSettings, after: GhostlineSettings): boolean {
  return RESTART_KEYS.some((k) => before[k] !== after[k]);
}
