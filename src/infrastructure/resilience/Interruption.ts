/**
 * Taking back an interruption a piece of Loom sent itself. A deadline (`Deadline`) or a
 * closing pool (`WorkerPool`) interrupts a caller's own fiber to cut its work short, under
 * an interruptor id of its own; once the work has unwound, that interruption is removed
 * from the fiber (`FiberRef.interruptedCause`), so the caller goes on with a typed error
 * instead of being interrupted. An interruption by anyone else stays.
 */
import { Cause, Effect, FiberRef, HashSet } from "effect"
import type { FiberId } from "effect"

/** Whether `cause` is an interruption by `by` and nobody else. */
export const isOnlyBy = (cause: Cause.Cause<unknown>, by: FiberId.FiberId): boolean => {
  if (!Cause.isInterruptedOnly(cause)) return false
  const interruptors = Cause.interruptors(cause)
  return HashSet.size(interruptors) === 1 && HashSet.has(interruptors, by)
}

/** Removes the current fiber's interruption if `by` alone sent it. */
export const takeBack = (by: FiberId.FiberId): Effect.Effect<void> =>
  FiberRef.update(FiberRef.interruptedCause, (cause) => isOnlyBy(cause, by) ? Cause.empty : cause)
