/**
 * A kind of run a service offers: a workflow graph, how a request's input becomes its
 * first state, how a stored run resumes, what its interrupts accept and how a fork's
 * state is merged. `RunManager` starts and drives runs by their kind.
 */
import { Effect, Schema } from "effect"
import type { ParseResult, Stream } from "effect"
import type { Checkpoint } from "../domain/CheckpointStore.js"
import type { ThreadId, WorkflowEvent } from "../domain/Workflow.js"
import type * as Interrupt from "./Interrupt.js"
import type { Graph } from "./Workflow.js"
import * as Workflow from "./Workflow.js"
import * as WorkflowEngine from "./WorkflowEngine.js"

/** A kind of run the service offers: which workflow it is, how to start one from an input text, how to resume one. */
export interface RunKind {
  /** The workflow's name, as stored with each run (what a restart resumes it by). */
  readonly workflow: string
  readonly run: (threadId: ThreadId, name: string, input: string) => Stream.Stream<WorkflowEvent>
  readonly resume: (threadId: ThreadId) => Stream.Stream<WorkflowEvent>
  /** The first checkpoint of a run on an input text: a run stored before it starts (queued on its thread) resumes from it. */
  readonly first: (name: string, input: string) => Effect.Effect<Checkpoint>
  /** The interrupts its graph's nodes ask, by name: what a resume's value must decode with. */
  readonly interrupts: ReadonlyMap<string, Interrupt.Any>
  /** A stored state with `update` merged in through the graph's reducers, encoded again (for a fork). */
  readonly merge: (state: unknown, update: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
}

/** A run kind over `graph`, whose first state `initial` makes from the request. */
export const runKind = <S, I>(
  engine: WorkflowEngine.Service,
  graph: Graph<S, I>,
  initial: (name: string, input: string) => S
): RunKind => ({
  workflow: graph.name,
  run: (threadId, name, input) => engine.run(graph, initial(name, input), { threadId }),
  resume: (threadId) => engine.resume(graph, threadId),
  first: (name, input) => WorkflowEngine.firstCheckpoint(graph, initial(name, input)),
  interrupts: graph.interrupts,
  merge: (state, update) =>
    Effect.gen(function*() {
      const current = yield* Schema.decodeUnknown(graph.state)(state)
      const change = yield* Schema.decodeUnknown(graph.update)(update)
      return yield* Schema.encode(graph.state)(Workflow.merge(graph, current, [change]))
    })
})
