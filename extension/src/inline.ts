// The inline-completion middleware's logic: enablement, debounce, cancellation, "shown" tracking.
// No `vscode` import (structural types only): unit-tested under plain Node with a fake `next`.
import { CancellationLike, waitUnlessCancelled } from "./debounce";
import { OutcomeTracker, Pos, ShownItem } from "./outcomes";
import { isEnabledFor, ServerSettings } from "./settings";

export const ACCEPT_COMMAND = "ghostline.accepted";

/** What we read from a vscode.InlineCompletionItem. */
export interface ItemLike {
  insertText: unknown; // string, or a SnippetString we do not track
  range?: { start: Pos };
  command?: { command: string; arguments?: unknown[] };
}

export type ResultLike<I extends ItemLike> = I[] | { items: I[] } | null | undefined;

export interface InlineRequest {
  uri: string;
  languageId: string;
  position: Pos;
  /** false for an explicit trigger (ghostline.trigger / Alt+\), which skips the debounce */
  automatic: boolean;
}

/** The completion id an item's command carries, if it is Ghostline's accept command. */
export function acceptId(command: ItemLike["command"]): string | undefined {
  const arg = command?.command === ACCEPT_COMMAND ? command.arguments?.[0] : undefined;
  return typeof arg === "string" ? arg : undefined;
}

/**
 * Runs one inline-completion request: no server call when Ghostline is off for the language or the request
 * is cancelled during the debounce; otherwise forwards it and tells the tracker what VS Code will show.
 */
export async function provideInline<I extends ItemLike>(
  req: InlineRequest,
  token: CancellationLike,
  next: () => ResultLike<I> | PromiseLike<ResultLike<I>>,
  settings: Pick<ServerSettings, "enable" | "languages" | "debounceMs">,
  tracker: Pick<OutcomeTracker, "result">,
): Promise<ResultLike<I>> {
  if (!isEnabledFor(settings, req.languageId)) return [];
  if (req.automatic && !(await waitUnlessCancelled(settings.debounceMs, token))) return [];
  const result = await next();
  if (token.isCancellationRequested) return result; // VS Code drops it; it was never shown
  const items = !result ? [] : Array.isArray(result) ? result : result.items;
  const first = items[0];
  const id = acceptId(first?.command);
  const shown: ShownItem | undefined = first && id && typeof first.insertText === "string"
    ? { id, text: first.insertText, position: first.range?.start ?? req.position }
    : undefined;
  tracker.result(req.uri, shown);
  return result;
}

