/**
 * A Loom run as an @effect/workflow execution. The thread id is the idempotency key, so
 * a second start of one id attaches to the one execution instead of running it twice,
 * and the engine (on @effect/cluster) owns where it runs and picks it up again after a
 * crash or a shutdown. The run's graph, events and history stay Loom's
 * (`WorkflowEngine`, `CheckpointStore`); the execution's body drives them, with each
 * node, model call and tool call an Activity (`activities`), so a replay gets finished
 * work back from the engine's storage.
 */
import * as Activity from "@effect/workflow/Activity"
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import * as Workflow from "@effect/workflow/Workflow"
import { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Cause, Context, Effect, Option, Schema } from "effect"
import { ThreadId } from "../domain/Workflow.js"
import type * as Durability from "./Durability.js"

/** What a run's execution needs to start: its id, which run kind, the name and input of the request. */
export const LoomRun = Workflow.make({
  name: "LoomRun",
  payload: {
    threadId: ThreadId,
    /** The run kind's workflow (`coding`, `agent`). */
    kind: Schema.String,
    name: Schema.String,
    input: Schema.String
  },
  idempotencyKey: ({ threadId }) => threadId
})
export type Payload = typeof LoomRun.payloadSchema.Type

/** Durability over the execution `context` belongs to: each unit is an Activity, named under `prefix`. */
export const activities = (
  context: Context.Context<WorkflowEngine | WorkflowInstance>,
  prefix = ""
): Durability.Service => ({
  durable: true,
  run: (unit) =>
    Activity.make({
      name: prefix === "" ? unit.name : `${prefix}/${unit.name}`,
      success: unit.success,
      error: unit.error,
      execute: suspending(unit.execute)
    }).pipe(inExecution(context)),
  wait: (name, schema, onWait) => {
    const deferred = DurableDeferred.make(name, { success: schema })
    return Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      // Counted as the engine counts Activities in flight: an ask that suspends first waits for this one to be
      // recorded, so concurrent asks (a turn's calls waiting for approval) all wait at once.
      yield* Workflow.wrapActivityResult(
        Effect.flatMap(engine.deferredResult(deferred), (done) => done === undefined ? onWait : Effect.void),
        () => false
      )
      return yield* DurableDeferred.await(deferred)
    }).pipe(inExecution(context))
  },
  peek: (name, schema) =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const exit = yield* engine.deferredResult(DurableDeferred.make(name, { success: schema }))
      return exit === undefined ? Option.none() : Option.some(yield* exit)
    }).pipe(inExecution(context)),
  within: (name) => activities(context, prefix === "" ? name : `${prefix}/${name}`)
})

/**
 * A unit whose work suspended in a fiber of its own (a tool call of a turn waiting for
 * approval, among others) ends interrupted, not suspended: the engine would take it for
 * an interruption and run the unit again (Activities retry on interruption). Such an
 * ending is turned back into a suspension of the unit itself.
 */
const suspending = <A, E>(execute: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.catchAllCause(
    execute,
    (cause) =>
      Effect.flatMap(Effect.serviceOption(WorkflowInstance), (instance) =>
        Option.isSome(instance) && instance.value.suspended && Cause.isInterruptedOnly(cause)
          ? Workflow.suspend(instance.value)
          : Effect.failCause(cause))
  )

/**
 * Runs `effect` in the execution `context` belongs to. Inside an Activity it keeps the
 * engine's instance for that Activity: a nested unit that suspends must not wait for its
 * parent to end.
 */
const inExecution = (context: Context.Context<WorkflowEngine | WorkflowInstance>) =>
<A, E>(
  effect: Effect.Effect<A, E, WorkflowEngine | WorkflowInstance>
): Effect.Effect<A, E> =>
  Effect.flatMap(Effect.serviceOption(WorkflowInstance), (ambient) =>
    Effect.provide(
      effect,
      Option.match(ambient, {
        onNone: () => context,
        onSome: (instance) => Context.add(context, WorkflowInstance, instance)
      })
    ))

/** The value for the interrupt `key` of the run `threadId`, handed to its execution, which resumes. */
export const giveValue = <A, I>(threadId: ThreadId, key: string, schema: Schema.Schema<A, I>, value: A) =>
  Effect.gen(function*() {
    const deferred = DurableDeferred.make(key, { success: schema })
    // an execution's id is made from its idempotency key, the thread id, alone
    const executionId = yield* LoomRun.executionId({ threadId, kind: "", name: "", input: "" })
    const token = DurableDeferred.tokenFromExecutionId(deferred, { workflow: LoomRun, executionId })
    yield* DurableDeferred.succeed(deferred, { token, value })
    return executionId
  })
