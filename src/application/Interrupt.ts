/**
 * Humans in the loop: a node asks a person for a value and gets it back typed. The run
 * waits (status `waiting`, an `Interrupted` event with the payload) until someone
 * resumes it with a value that decodes with the interrupt's `resume` schema. Under a
 * durable run the wait is a DurableDeferred of the run's execution, so it survives
 * restarts and moves between runners; the node runs again from its start when resumed
 * (its model and tool calls come back from the engine), and this time the ask returns the
 * value. A node may ask several times, and several nodes of one step may wait at once:
 * each ask has its own key. A graph declares the interrupts its nodes ask
 * (`Workflow.make({ interrupts })`), so a resume can be checked before the run goes on.
 */
import type { Effect as Eff } from "effect"
import { Context, Effect, Option, Schema } from "effect"
import type { WorkflowEvent } from "../domain/Workflow.js"
import { Interrupted } from "../domain/Workflow.js"
import { Durability } from "./Durability.js"

/** An ask that cannot wait: outside a workflow node, or in a run that is not durable (nothing could resume it). */
export class InterruptUnavailable extends Schema.TaggedError<InterruptUnavailable>()("InterruptUnavailable", {
  name: Schema.String,
  message: Schema.String
}) {}

/** An interrupt: its name, what a node shows the person, what the person answers. */
export interface Interrupt<P, PI, V, VI> {
  readonly name: string
  readonly payload: Schema.Schema<P, PI>
  readonly resume: Schema.Schema<V, VI>
  /**
   * Asks for a value, showing `payload`; the run waits until it is resumed with one. Asks
   * of one node are told apart by their order, or by `id` when they are made concurrently
   * (an order that may change between replays).
   */
  readonly ask: (payload: P, id?: string) => Eff.Effect<V, InterruptUnavailable>
  /**
   * The value if the ask was answered already; otherwise records that the run waits on it
   * and gives none, without waiting: for a node with other work to finish first, which
   * then asks (and waits).
   */
  readonly poll: (payload: P, id?: string) => Eff.Effect<Option.Option<V>, InterruptUnavailable>
}

/** Any interrupt, as a graph lists them. */
export interface Any {
  readonly name: string
  readonly resume: Schema.Schema.AnyNoContext
}

/** Where the node that asks is: set by the engine around each node's execution. */
export interface Asking {
  readonly step: number
  readonly node: string
  /** The ask's number within this execution of the node (0, 1, ...): the same on every replay. */
  readonly next: () => number
  /** Records that the run waits (status `waiting`, the event stored and emitted). */
  readonly record: (event: WorkflowEvent) => Eff.Effect<void>
}

export class CurrentAsking extends Context.Reference<CurrentAsking>()("loom/Interrupt/CurrentAsking", {
  defaultValue: (): Asking | undefined => undefined
}) {}

/** The key of an ask: unique within its run, the same on every replay. */
export const keyOf = (asking: Pick<Asking, "step" | "node">, name: string, id: number | string) =>
  `${asking.step}/${asking.node}/${name}/${id}`

export const make = <P, PI, V, VI>(
  name: string,
  options: { readonly payload: Schema.Schema<P, PI>; readonly resume: Schema.Schema<V, VI> }
): Interrupt<P, PI, V, VI> => ({
  name,
  payload: options.payload,
  resume: options.resume,
  ask: (payload, id) =>
    Effect.flatMap(
      asked(name, options.payload, payload, id),
      ({ durability, key, record }) => durability.wait(key, options.resume, record)
    ),
  poll: (payload, id) =>
    Effect.flatMap(
      asked(name, options.payload, payload, id),
      ({ durability, key, record }) =>
        Effect.tap(
          durability.peek(key, options.resume),
          (answer) => Option.isNone(answer) ? record : Effect.void
        )
    )
})

/** Where an ask is made, its key, and how its wait is recorded; or why it cannot be made. */
const asked = <P, PI>(name: string, schema: Schema.Schema<P, PI>, payload: P, id: string | undefined) =>
  Effect.gen(function*() {
    const asking = yield* CurrentAsking
    const durability = yield* Durability
    if (asking === undefined || !durability.durable) {
      return yield* new InterruptUnavailable({
        name,
        message: asking === undefined
          ? `interrupt ${name} asked outside a workflow node`
          : `interrupt ${name} needs a durable run (one started through RunManager, the service or \`loom run\`)`
      })
    }
    const key = keyOf(asking, name, id ?? asking.next())
    const encoded = yield* Schema.encode(schema)(payload).pipe(Effect.orDie)
    const record = asking.record(new Interrupted({ step: asking.step, node: asking.node, name, key, payload: encoded }))
    return { asking, durability, key, record }
  })
