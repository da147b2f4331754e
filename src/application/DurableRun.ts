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
import * as Workflow from "@effect/workflow/Workflow"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Context, Effect, Option, Schema } from "effect"
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
    Effect.flatMap(Effect.serviceOption(WorkflowInstance), (ambient) =>
      Activity.make({
        name: prefix === "" ? unit.name : `${prefix}/${unit.name}`,
        success: unit.success,
        error: unit.error,
        execute: unit.execute
      }).pipe(
        // inside an Activity, the engine's instance for it: a nested unit that suspends must not wait for its parent
        Effect.provide(Option.match(ambient, {
          onNone: () => context,
          onSome: (instance) => Context.add(context, WorkflowInstance, instance)
        }))
      )),
  within: (name) => activities(context, prefix === "" ? name : `${prefix}/${name}`)
})
