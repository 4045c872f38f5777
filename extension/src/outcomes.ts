// What happened to each suggestion VS Code showed: the `ghostline/outcome` notifications (docs/protocol.md).
// No `vscode` import: the extension feeds it plain events, unit tests feed it the same events under Node.
//
// A stable VS Code extension sees only one thing directly: `ghostline.accepted` running after a full accept
// (Tab). Everything else is inferred:
// - "shown": the middleware handed an item to VS Code.
// - "partial" {acceptedLength}: VS Code's "accept next word / line" inserted a prefix of what is left of the
//   item at its position: a multi-character insert (auto-indent and auto-closed pairs aside), or a one-character
//   insert after which the cursor moved without the keyboard (typing moves it with kind "keyboard").
//   acceptedLength = how much of the item's text is in the document now. Reported at once; later a full
//   accept or nothing follows (never "ignored").
// - "ignored" {reason}: the item went away unaccepted. typed_over: an edit that does not continue it (or the
//   user typed all of it by hand); cursor_moved: the cursor left the end of the accepted part or the editor
//   lost focus; dismissed: Escape, or the next request for the document brought another item or none;
//   timeout: still shown `timeoutMs` after it was last touched.
// - "helpful"/"unhelpful": the commands, for the last item shown.
// Typing exactly what the ghost text shows keeps it alive: the server answers the next request from its
// typing-through cache with a new id (its parent is the old one). That continuation is the same suggestion,
// so the old id gets no final outcome of its own; the newest id of the chain gets it.
// Reports that could race the accept command (an edit that inserts all that is left, which is what Tab does
// before VS Code runs the command) wait `graceMs` and are dropped if the accept arrives meanwhile, so one id
// never gets both "accepted" and something else.

export type OutcomeKind = "shown" | "accepted" | "partial" | "ignored" | "helpful" | "unhelpful";
export type IgnoredReason = "typed_over" | "dismissed" | "cursor_moved" | "timeout";

export interface OutcomeParams {
  id: string;
  outcome: OutcomeKind;
  acceptedLength?: number;
  reason?: IgnoredReason;
}

export interface Pos {
  line: number;
  character: number;
}

export interface TextChange {
  range: { start: Pos; end: Pos };
  text: string;
}

export interface ShownItem {
  id: string;
  text: string;
  /** Where the item's text goes (its range start; the request position when it has no range). */
  position: Pos;
}

export type SelectionKind = "keyboard" | "mouse" | "command" | undefined;

export interface TrackerOptions {
  /** An item still shown this long after the last thing that happened to it is "ignored"/"timeout". */
  timeoutMs?: number;
  /** How long a report that the accept command could still cancel is held back. */
  graceMs?: number;
  now?: () => number;
}

interface Live {
  id: string;
  chain: string[]; // earlier ids this item continues (typing-through), oldest first
  uri: string;
  start: Pos;
  text: string;
  consumed: number; // characters of `text` now in the document, typed or accepted
  partial: boolean; // a partial accept was reported for this id
  touchedAt: number;
}

interface Pending {
  params: OutcomeParams;
  chain: string[];
  dueAt: number;
}

export function samePos(a: Pos, b: Pos): boolean {
  return a.line === b.line && a.character === b.character;
}

/** The position after inserting `text` at `pos`. */
export function advance(pos: Pos, text: string): Pos {
  const lines = text.split("\n");
  if (lines.length === 1) return { line: pos.line, character: pos.character + text.length };
  return { line: pos.line + lines.length - 1, character: lines[lines.length - 1].length };
}

// Multi-character edits that are typing, not an accept: Enter with auto-indent, auto-closed pairs.
const TYPING_LIKE = /^(\r?\n[ \t]*|\(\)|\[\]|\{\}|""|''|``)$/;

export class OutcomeTracker {
  private live: Live | undefined;
  private pending: Pending[] = [];
  private lastShown: string | undefined;
  private typed: { live: Live; full: boolean } | undefined; // the last insert taken for typing
  private readonly timeoutMs: number;
  private readonly graceMs: number;
  private readonly now: () => number;

  constructor(private readonly send: (params: OutcomeParams) => void, options: TrackerOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.graceMs = options.graceMs ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /** The id of the item currently shown (as far as the tracker can tell). */
  get currentId(): string | undefined {
    return this.live?.id;
  }

  /** The last item handed to VS Code, shown or not any more: what helpful/unhelpful refer to. */
  get lastShownId(): string | undefined {
    return this.lastShown;
  }

  /** True while something may still have to be reported (the extension ticks only then). */
  get busy(): boolean {
    return this.live !== undefined || this.pending.length > 0;
  }

  /** A request for `uri` finished and its result (first item, or none) went to VS Code. */
  result(uri: string, item: ShownItem | undefined): void {
    const live = this.live;
    if (live && item && item.id === live.id) {
      live.touchedAt = this.now();
      return;
    }
    if (live && item && item.text.length > 0 && live.uri === uri && this.continues(live, item)) {
      this.live = this.fresh(uri, item, [...live.chain, live.id]);
      this.emit({ id: item.id, outcome: "shown" });
      return;
    }
    if (live) this.end("dismissed");
    if (item && item.text.length > 0) {
      this.live = this.fresh(uri, item, []);
      this.emit({ id: item.id, outcome: "shown" });
    }
  }

  /** The document changed (`changes` in the order VS Code reports them). */
  documentChanged(uri: string, changes: readonly TextChange[]): void {
    const live = this.live;
    if (!live || live.uri !== uri || changes.length === 0) return;
    this.typed = undefined;
    const change = changes.length === 1 ? changes[0] : undefined;
    const at = this.expected(live);
    const rest = live.text.slice(live.consumed);
    if (!change || change.text.length === 0 || !samePos(change.range.start, at) || !samePos(change.range.end, at)
        || !rest.startsWith(change.text)) {
      this.end("typed_over");
      return;
    }
    live.consumed += change.text.length;
    live.touchedAt = this.now();
    const byEditor = change.text.length > 1 && !TYPING_LIKE.test(change.text);
    const full = live.consumed >= live.text.length;
    if (full) {
      // All of it is in the document: Tab (the accept command follows), the last partial accept, or typing.
      this.live = undefined;
      if (byEditor) this.hold({ id: live.id, outcome: "partial", acceptedLength: live.text.length }, live.chain);
      else if (!live.partial) this.hold({ id: live.id, outcome: "ignored", reason: "typed_over" }, live.chain);
    } else if (byEditor) {
      live.partial = true;
      this.emit({ id: live.id, outcome: "partial", acceptedLength: live.consumed });
    }
    // A one-character insert may still be VS Code's accept-next-word ("(", " "): the selection change that
    // follows tells (typing moves the cursor with kind "keyboard", an accept command does not).
    if (!byEditor && !TYPING_LIKE.test(change.text)) this.typed = { live, full };
  }

  /**
   * The primary cursor of the editor showing `uri` is now at `pos` (no selection: its active end); `kind` is
   * VS Code's TextEditorSelectionChangeKind as a word (undefined when VS Code gives none, as for commands).
   */
  selectionChanged(uri: string, pos: Pos, kind?: SelectionKind): void {
    const typed = this.typed;
    this.typed = undefined;
    if (typed && kind !== "keyboard" && typed.live.uri === uri) this.acceptedByEditor(typed.live, typed.full);
    const live = this.live;
    if (!live) return;
    if (live.uri !== uri) {
      this.end("cursor_moved");
      return;
    }
    if (!samePos(pos, this.expected(live))) this.end("cursor_moved");
  }

  /** The last insert, taken for typing, was an editor accept after all: report it as partial. */
  private acceptedByEditor(live: Live, full: boolean): void {
    if (full) {
      this.pending = this.pending.filter((p) => p.params.id !== live.id);
      this.hold({ id: live.id, outcome: "partial", acceptedLength: live.text.length }, live.chain);
    } else if (this.live === live) {
      live.partial = true;
      this.emit({ id: live.id, outcome: "partial", acceptedLength: live.consumed });
    }
  }

  /** Another editor (or none) became active. */
  activeEditorChanged(uri: string | undefined): void {
    if (this.live && this.live.uri !== uri) this.end("cursor_moved");
  }

  /** The user dismissed the ghost text (Escape). */
  dismissed(): void {
    if (this.live) this.end("dismissed");
  }

  /** `ghostline.accepted` ran with this id: the server already got the accept through the command itself. */
  accepted(id: string): void {
    this.pending = this.pending.filter((p) => p.params.id !== id && !p.chain.includes(id));
    const live = this.live;
    if (live && (live.id === id || live.chain.includes(id))) this.live = undefined;
  }

  /** helpful/unhelpful for the last item shown; returns its id, or undefined when nothing was shown yet. */
  mark(kind: "helpful" | "unhelpful"): string | undefined {
    const id = this.live?.id ?? this.lastShown;
    if (id) this.emit({ id, outcome: kind });
    return id;
  }

  /** Call now and then (the extension does every second while `busy`): timeouts and held-back reports. */
  tick(): void {
    const now = this.now();
    const live = this.live;
    if (live && now - live.touchedAt >= this.timeoutMs) this.end("timeout", false);
    const due = this.pending.filter((p) => p.dueAt <= now);
    if (due.length === 0) return;
    this.pending = this.pending.filter((p) => p.dueAt > now);
    for (const p of due) this.send(p.params);
  }

  /** Send everything held back now (the extension calls this before the connection goes away). */
  flush(): void {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) this.send(p.params);
  }

  /** Forget the shown item without reporting it (the server it came from is gone). */
  reset(): void {
    this.live = undefined;
    this.typed = undefined;
    this.pending = [];
  }

  private fresh(uri: string, item: ShownItem, chain: string[]): Live {
    this.lastShown = item.id;
    return { id: item.id, chain: chain.slice(-32), uri, start: item.position, text: item.text, consumed: 0,
             partial: false, touchedAt: this.now() };
  }

  private continues(live: Live, item: ShownItem): boolean {
    return samePos(item.position, this.expected(live)) && live.text.slice(live.consumed).startsWith(item.text);
  }

  private expected(live: Live): Pos {
    return advance(live.start, live.text.slice(0, live.consumed));
  }

  /** The shown item went away unaccepted (silently if part of it was accepted). */
  private end(reason: IgnoredReason, hold = true): void {
    const live = this.live;
    if (!live) return;
    this.live = undefined;
    if (live.partial) return;
    const params: OutcomeParams = { id: live.id, outcome: "ignored", reason };
    if (hold) this.hold(params, live.chain);
    else this.emit(params);
  }

  private hold(params: OutcomeParams, chain: string[]): void {
    this.pending.push({ params, chain, dueAt: this.now() + this.graceMs });
  }

  private emit(params: OutcomeParams): void {
    this.send(params);
  }
}
