// How the status bar item shows the server's `ghostline/status` (and the extension's own states).
// No `vscode` import: unit-tested under plain Node.

export type ServerState = "loading" | "ready" | "generating" | "disabled" | "error";
/** States the extension adds: before the server runs, and when it could not start or stopped. */
export type State = ServerState | "starting" | "stopped";

export interface StatusParams {
  state: State;
  message?: string;
  model?: string | null;
}

export interface StatusView {
  /** Status bar text with a codicon. */
  text: string;
  /** Screen-reader label; also what the e2e test waits for ("Ghostline ready"). */
  label: string;
  tooltip: string;
  /** Background colour theme key, if the item should stand out. */
  background?: "statusBarItem.errorBackground" | "statusBarItem.warningBackground";
}

const STATES: readonly string[] = ["loading", "ready", "generating", "disabled", "error", "starting", "stopped"];

/** Accepts whatever the server sent; an unknown state is shown as an error rather than dropped. */
export function parseStatus(raw: unknown): StatusParams {
  if (raw === null || typeof raw !== "object") return { state: "error", message: "malformed ghostline/status" };
  const r = raw as Record<string, unknown>;
  const state = typeof r.state === "string" && STATES.includes(r.state) ? (r.state as State) : undefined;
  if (!state) return { state: "error", message: `unknown server state ${JSON.stringify(r.state)}` };
  return {
    state,
    message: typeof r.message === "string" ? r.message : undefined,
    model: typeof r.model === "string" ? r.model : undefined,
  };
}

const ICON: Record<State, string> = {
  starting: "$(loading~spin)",
  loading: "$(loading~spin)",
  ready: "$(sparkle)",
  generating: "$(sync~spin)",
  disabled: "$(circle-slash)",
  error: "$(error)",
  stopped: "$(debug-disconnect)",
};

const WORDS: Record<State, string> = {
  starting: "starting the server",
  loading: "loading the model",
  ready: "ready",
  generating: "generating",
  disabled: "disabled",
  error: "error",
  stopped: "server stopped",
};

/**
 * @param enabledHere whether completions are on for the active editor's language (the server only knows
 * the global switch; a per-language "off" is shown as disabled too).
 */
export function statusView(status: StatusParams, enabledHere = true): StatusView {
  const state: State = status.state === "ready" && !enabledHere ? "disabled" : status.state;
  const lines = [`Ghostline: ${WORDS[state]}`];
  if (state === "disabled" && status.state === "ready") lines.push("Off for this language (ghostline.languages).");
  if (status.message) lines.push(status.message);
  if (status.model) lines.push(`Model: ${status.model}`);
  lines.push("Click for the Ghostline menu.");
  return {
    text: `${ICON[state]} Ghostline`,
    label: `Ghostline ${state}`,
    tooltip: lines.join("\n"),
    background: state === "error" || state === "stopped" ? "statusBarItem.errorBackground" : undefined,
  };
}
