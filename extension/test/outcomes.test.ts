import assert from "node:assert/strict";
import { test } from "node:test";

import { advance, OutcomeParams, OutcomeTracker, Pos, TextChange } from "../src/outcomes";

const URI = "file:///w/a.py";
const pos = (line: number, character: number): Pos => ({ line, character });
const insert = (at: Pos, text: string): TextChange => ({ range: { start: at, end: at }, text });

function setup(options: { timeoutMs?: number; graceMs?: number } = {}) {
  let now = 1_000;
  const sent: OutcomeParams[] = [];
  const t = new OutcomeTracker((p) => sent.push(p), { now: () => now, graceMs: 500, timeoutMs: 10_000, ...options });
  const later = (ms: number) => {
    now += ms;
    t.tick();
  };
  return { t, sent, later };
}

test("advance() handles single- and multi-line text", () => {
  assert.deepEqual(advance(pos(3, 4), "abc"), pos(3, 7));
  assert.deepEqual(advance(pos(3, 4), "abc\n  de"), pos(4, 4));
  assert.deepEqual(advance(pos(3, 4), "\n"), pos(4, 0));
  assert.deepEqual(advance(pos(3, 4), ""), pos(3, 4));
});

test("shown, then Tab: the edit inserts everything, the accept command follows; nothing else is sent", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: " % 2 == 0", position: pos(5, 12) });
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }]);
  t.documentChanged(URI, [insert(pos(5, 12), " % 2 == 0")]);
  t.selectionChanged(URI, pos(5, 21));
  t.accepted("a");
  later(5_000);
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }]);
  assert.equal(t.busy, false);
});

test("multi-line accept: the cursor lands where the text ends", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "m", text: "\n    return 1\n", position: pos(0, 10) });
  t.documentChanged(URI, [insert(pos(0, 10), "\n    return 1\n")]);
  t.selectionChanged(URI, pos(2, 0));
  t.accepted("m");
  later(5_000);
  assert.deepEqual(sent.map((s) => s.outcome), ["shown"]);
});

test("typing something else: ignored / typed_over (held back briefly, then sent)", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "foo()", position: pos(1, 0) });
  t.documentChanged(URI, [insert(pos(1, 0), "x")]);
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }]);
  later(499);
  assert.equal(sent.length, 1);
  later(1);
  assert.deepEqual(sent[1], { id: "a", outcome: "ignored", reason: "typed_over" });
});

test("deleting text or editing elsewhere in the document is typed_over too; other documents do not matter", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "foo()", position: pos(1, 4) });
  t.documentChanged("file:///w/other.py", [insert(pos(0, 0), "zzz")]);
  t.documentChanged(URI, []); // e.g. a save: no content change
  t.documentChanged(URI, [{ range: { start: pos(1, 3), end: pos(1, 4) }, text: "" }]);
  later(1_000);
  assert.deepEqual(sent.map((s) => s.reason ?? s.outcome), ["shown", "typed_over"]);
});

test("typing through: the server's continuation (new id) replaces the old one silently; accept is on the new id", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "range(10)", position: pos(2, 9) });
  t.documentChanged(URI, [insert(pos(2, 9), "r")]);
  t.selectionChanged(URI, pos(2, 10), "keyboard");
  t.documentChanged(URI, [insert(pos(2, 10), "a")]);
  t.selectionChanged(URI, pos(2, 11), "keyboard");
  t.result(URI, { id: "b", text: "nge(10)", position: pos(2, 11) });
  assert.equal(t.currentId, "b");
  t.documentChanged(URI, [insert(pos(2, 11), "nge(10)")]);
  t.accepted("b");
  later(5_000);
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }, { id: "b", outcome: "shown" }]);
});

test("typing all of it by hand is typed_over (no accept came)", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "ok", position: pos(0, 0) });
  t.documentChanged(URI, [insert(pos(0, 0), "o")]);
  t.documentChanged(URI, [insert(pos(0, 1), "k")]);
  later(1_000);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "typed_over" });
});

test("Tab on a one-character rest is not mistaken for typing", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: ")", position: pos(0, 5) });
  t.documentChanged(URI, [insert(pos(0, 5), ")")]);
  t.accepted("a");
  later(1_000);
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }]);
});

test("Enter with auto-indent and auto-closed brackets count as typing, not as a partial accept", () => {
  const { t, sent } = setup();
  t.result(URI, { id: "a", text: "\n    return ()", position: pos(0, 8) });
  t.documentChanged(URI, [insert(pos(0, 8), "\n    ")]);
  t.documentChanged(URI, [insert(pos(1, 4), "return ")]); // multi-character, not typing-like: partial
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "partial", acceptedLength: 12 });
  const { t: t2, sent: sent2 } = setup();
  t2.result(URI, { id: "b", text: "()", position: pos(0, 3) });
  t2.documentChanged(URI, [insert(pos(0, 3), "()")]);
  assert.deepEqual(sent2, [{ id: "b", outcome: "shown" }]);
});

test("partial accept (accept word): reported at once with the length in the document; never ignored after", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "print(value)", position: pos(3, 4) });
  t.documentChanged(URI, [insert(pos(3, 4), "print(")]);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "partial", acceptedLength: 6 });
  t.documentChanged(URI, [insert(pos(3, 10), "v")]); // typed one more matching character
  t.documentChanged(URI, [insert(pos(3, 11), "alue")]); // and accepted another word
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "partial", acceptedLength: 11 });
  t.selectionChanged(URI, pos(9, 0));
  later(5_000);
  assert.deepEqual(sent.map((s) => s.outcome), ["shown", "partial", "partial"]);
});

test("the last partial accept covers the rest and no accept command comes: partial with the full length", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "x = 1", position: pos(0, 0) });
  t.documentChanged(URI, [insert(pos(0, 0), "x = 1")]);
  later(100);
  assert.equal(sent.length, 1);
  later(1_000);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "partial", acceptedLength: 5 });
});

test("a one-character accept-next-word is told from typing by the selection change that follows", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: " * x", position: pos(0, 8) });
  t.documentChanged(URI, [insert(pos(0, 8), " ")]);
  t.selectionChanged(URI, pos(0, 9), undefined); // Ctrl+Right: no keyboard kind
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "partial", acceptedLength: 1 });
  t.documentChanged(URI, [insert(pos(0, 9), "*")]);
  t.selectionChanged(URI, pos(0, 10), "keyboard"); // typed: no new report
  assert.equal(sent.length, 2);
  t.selectionChanged(URI, pos(5, 0), "mouse");
  later(5_000);
  assert.deepEqual(sent.map((x) => x.outcome), ["shown", "partial"]);
});

test("the last character: typed (typed_over), accepted word (partial), or Tab (accept only)", () => {
  for (const [kind, accept, expected] of [
    ["keyboard", false, [{ id: "a", outcome: "ignored", reason: "typed_over" }]],
    [undefined, false, [{ id: "a", outcome: "partial", acceptedLength: 1 }]],
    [undefined, true, []],
  ] as const) {
    const { t, sent, later } = setup();
    t.result(URI, { id: "a", text: ")", position: pos(0, 5) });
    t.documentChanged(URI, [insert(pos(0, 5), ")")]);
    t.selectionChanged(URI, pos(0, 6), kind);
    if (accept) t.accepted("a");
    later(5_000);
    assert.deepEqual(sent.slice(1), expected, `kind=${kind} accept=${accept}`);
  }
});

test("Enter with auto-indent moves the cursor without the keyboard kind and is still typing", () => {
  const { t, sent } = setup();
  t.result(URI, { id: "a", text: "\n    return 1", position: pos(0, 8) });
  t.documentChanged(URI, [insert(pos(0, 8), "\n    ")]);
  t.selectionChanged(URI, pos(1, 4), undefined);
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }]);
  assert.equal(t.currentId, "a");
});

test("cursor moves away: cursor_moved; the cursor at the end of the accepted part is fine", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.selectionChanged(URI, pos(1, 2));
  t.documentChanged(URI, [insert(pos(1, 2), "a")]);
  t.selectionChanged(URI, pos(1, 3), "keyboard");
  assert.equal(t.currentId, "a");
  t.selectionChanged(URI, pos(0, 0));
  later(1_000);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "cursor_moved" });
});

test("switching to another editor: cursor_moved", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.activeEditorChanged(URI);
  assert.equal(t.currentId, "a");
  t.activeEditorChanged("file:///w/b.py");
  later(1_000);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "cursor_moved" });
});

test("Escape: dismissed", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.dismissed();
  later(1_000);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "dismissed" });
});

test("the next request brings another item (or none): the old one was dismissed", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.result(URI, { id: "b", text: "xyz", position: pos(1, 2) });
  t.result(URI, undefined);
  later(1_000);
  assert.deepEqual(sent, [
    { id: "a", outcome: "shown" },
    { id: "b", outcome: "shown" },
    { id: "a", outcome: "ignored", reason: "dismissed" },
    { id: "b", outcome: "ignored", reason: "dismissed" },
  ]);
});

test("the same item again is not shown twice; an empty text is never shown", () => {
  const { t, sent } = setup();
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.result(URI, { id: "e", text: "", position: pos(1, 2) });
  assert.deepEqual(sent, [{ id: "a", outcome: "shown" }]);
  assert.equal(t.currentId, undefined); // the empty result ended "a" (its "ignored" is held back)
  t.flush();
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "dismissed" });
});

test("timeout: still on screen long after it was last touched", () => {
  const { t, sent, later } = setup({ timeoutMs: 3_000 });
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  later(2_000);
  t.documentChanged(URI, [insert(pos(1, 2), "a")]); // touching it restarts the clock
  later(2_000);
  assert.equal(sent.length, 1);
  later(1_000);
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "timeout" });
  assert.equal(t.busy, false);
});

test("accept arriving for an earlier id of a typing-through chain ends the live item", () => {
  const { t, sent, later } = setup();
  t.result(URI, { id: "a", text: "abcdef", position: pos(0, 0) });
  t.documentChanged(URI, [insert(pos(0, 0), "a")]);
  t.result(URI, { id: "b", text: "bcdef", position: pos(0, 1) });
  t.documentChanged(URI, [insert(pos(0, 1), "bcdef")]);
  t.accepted("a"); // VS Code kept showing the first item object
  later(5_000);
  // the accept of "a" covers its continuation "b": no held-back partial for b
  assert.deepEqual(sent.map((s) => `${s.id}:${s.outcome}`), ["a:shown", "b:shown"]);
});

test("helpful / unhelpful go to the last item shown, even after it ended", () => {
  const { t, sent } = setup();
  assert.equal(t.mark("helpful"), undefined);
  assert.equal(sent.length, 0);
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.dismissed();
  assert.equal(t.mark("unhelpful"), "a");
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "unhelpful" });
  t.result(URI, { id: "b", text: "q", position: pos(4, 0) });
  assert.equal(t.mark("helpful"), "b");
  assert.deepEqual(sent.at(-1), { id: "b", outcome: "helpful" });
});

test("flush sends what is held back; reset forgets", () => {
  const { t, sent } = setup();
  t.result(URI, { id: "a", text: "abc", position: pos(1, 2) });
  t.dismissed();
  t.flush();
  assert.deepEqual(sent.at(-1), { id: "a", outcome: "ignored", reason: "dismissed" });
  t.result(URI, { id: "b", text: "abc", position: pos(1, 2) });
  t.reset();
  assert.equal(t.busy, false);
  t.flush();
  assert.equal(sent.at(-1)?.id, "b");
  assert.equal(sent.at(-1)?.outcome, "shown");
});
