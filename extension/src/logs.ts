// Routes the server's stderr (Python logging: "<date> <time> LEVEL logger: message") into the log output
// channel at the right level; languageclient's default would log every line as an error.
// No `vscode` import: unit-tested under plain Node.

export type Level = "trace" | "debug" | "info" | "warn" | "error";

const LEVELS: Record<string, Level> = {
  DEBUG: "debug", INFO: "info", WARNING: "warn", WARN: "warn", ERROR: "error", CRITICAL: "error", FATAL: "error",
};

const HEADER = /^\d{4}-\d\d-\d\d[ T][\d:,.]+ (DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL) (.*)$/;

/**
 * Returns a function that classifies one stderr line. A line without a logging header (a traceback, a
 * warning printed by a library) takes the level of the record it follows, or "error" at the start.
 */
export function stderrClassifier(): (line: string) => { level: Level; text: string } {
  let last: Level = "error";
  return (line: string) => {
    const m = HEADER.exec(line);
    if (m) {
      last = LEVELS[m[1]];
      return { level: last, text: m[2] };
    }
    return { level: last, text: line };
  };
}
