import assert from "node:assert/strict";
import { test } from "node:test";

import { CancellationLike, waitUnlessCancelled } from "../src/debounce";

class Token implements CancellationLike {
  isCancellationRequested = false;
  listeners = new Set<() => unknown>();
  onCancellationRequested(listener: () => unknown) {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }
  cancel() {
    this.isCancellationRequested = true;
    for (const l of [...this.listeners]) l();
  }
}

test("waits the full delay when not cancelled", async () => {
  const token = new Token();
  const t0 = Date.now();
  assert.equal(await waitUnlessCancelled(60, token), true);
  assert.ok(Date.now() - t0 >= 55);
  assert.equal(token.listeners.size, 0, "listener disposed");
});

test("returns false as soon as the token is cancelled", async () => {
  const token = new Token();
  const t0 = Date.now();
  const p = waitUnlessCancelled(5000, token);
  setTimeout(() => token.cancel(), 20);
  assert.equal(await p, false);
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(token.listeners.size, 0);
});

test("already cancelled: false without waiting; zero delay: true at once", async () => {
  const token = new Token();
  token.cancel();
  assert.equal(await waitUnlessCancelled(5000, token), false);
  assert.equal(await waitUnlessCancelled(0, new Token()), true);
});

test("a token that fires during registration", async () => {
  const eager: CancellationLike = {
    isCancellationRequested: false,
    onCancellationRequested(listener) {
      listener();
      return { dispose() {} };
    },
  };
  assert.equal(await waitUnlessCancelled(5000, eager), false);
});

test("a burst of requests: only the last one survives the debounce", async () => {
  const tokens = [new Token(), new Token(), new Token()];
  const results: Promise<boolean>[] = [];
  for (const [i, token] of tokens.entries()) {
    if (i > 0) tokens[i - 1].cancel(); // VS Code cancels the previous request on the next keystroke
    results.push(waitUnlessCancelled(50, token));
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(await Promise.all(results), [false, false, true]);
});
