// Client-side debounce for inline completion requests. No `vscode` import: unit-tested under plain Node.
//
// VS Code cancels the token of the previous inline-completion request as soon as the user types again, so
// "wait `debounceMs`, then ask the server unless cancelled meanwhile" is a debounce: only the request made
// after the last keystroke of a burst reaches the server.

/** The part of vscode.CancellationToken we need. */
export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): { dispose(): unknown };
}

/**
 * Resolves `true` after `ms` milliseconds, or `false` as soon as `token` is cancelled (immediately if it
 * already is). Never rejects; leaves no timer or listener behind.
 */
export function waitUnlessCancelled(ms: number, token: CancellationLike): Promise<boolean> {
  if (token.isCancellationRequested) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    let done = false;
    let sub: { dispose(): unknown } | undefined;
    const finish = (value: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sub?.dispose();
      resolve(value);
    };
    const timer = setTimeout(() => finish(true), ms);
    sub = token.onCancellationRequested(() => finish(false));
    if (done) sub.dispose(); // the listener ran synchronously
  });
}
