// What an uncaught exception in a workflow becomes: a trap the host reports as `guest_panic`,
// with the exception's message and stack.
//
// Left alone, componentize-js lowers *any* value thrown out of `run` as the `template-error`
// record, so an `Error` (no `code`) fails that lowering and the run traps with nothing but
// "expected a string, received [undefined]" on stderr — the real message is lost. So the SDK
// catches it and, before trapping on purpose:
//   1. logs it through the logging import at `error` level (message, name, stack, workflow),
//      so it is a job event whatever the host makes of the trap;
//   2. writes the host's panic block to stderr — the shape the host already parses for Rust
//      panics (host/src/runtime/wasi.rs `panic_message`):
//          vidfarm-guest (javascript) panicked at workflow `<name>`:
//          <Name>: <message>
//          <stack frames>
//          note: an uncaught exception in a JavaScript workflow; the run traps next
//      so the job fails with `guest_panic` and the message and stack as its message.
// See guest-sdk/NOTES-js-python.md for the exact host-side view.

import { log } from "vidfarm:template/logging@0.1.0";

/** What the exception says, with its stack when it has one. */
export function describeException(error: unknown): { name: string; message: string; stack: string } {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, stack: typeof error.stack === "string" ? error.stack : "" };
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : JSON.stringify(error) ?? String(error);
  } catch {
    message = String(error);
  }
  return { name: "thrown value", message, stack: "" };
}

/** The stack, one indented frame a line (SpiderMonkey prints `fn@file:line:col`). */
function frames(stack: string): string {
  return stack
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => `    at ${line.trim()}`)
    .join("\n");
}

/** Report an uncaught exception, then end the run with a trap. Never returns. */
export function panic(workflow: string, error: unknown): never {
  const { name, message, stack } = describeException(error);
  const text = stack ? `${name}: ${message}\n${frames(stack)}` : `${name}: ${message}`;
  try {
    log(
      "error",
      `uncaught exception in workflow \`${workflow}\`: ${name}: ${message}`,
      JSON.stringify({ workflow, exception: name, message, stack }),
    );
  } catch {
    // The event cap may be reached; stderr below still carries the message.
  }
  console.error(
    `vidfarm-guest (javascript) panicked at workflow \`${workflow}\`:\n${text}\n` +
      "note: an uncaught exception in a JavaScript workflow; the run traps next",
  );
  throw trap();
}

/**
 * A value whose lowering as `template-error` throws: componentize-js catches what `run`
 * throws and lowers it as the error record, and an exception *during* lowering escapes the
 * export, which StarlingMonkey reports and answers with `abort()` — a wasm `unreachable` trap.
 */
function trap(): object {
  return {
    get code(): string {
      throw new Error("vidfarm-guest: trapping after the uncaught exception reported above");
    },
  };
}
