/**
 * A run's history as the service streams it (`GET /v1/runs/:id/events`, Server-Sent
 * Events: one `id:`, `event:` and `data:` block per stored event), and what a whole
 * history must hold: gapless ids from 1, no (step, node) finished twice.
 */
import { assert } from "@effect/vitest"
import { Effect } from "effect"

/** The nodes a coding run on the simulator's script finishes, in order: its first code fails the tests, the second passes. */
export const codingNodes = ["intent", "planner", "test_writer", "coder", "runner", "coder", "runner", "reviewer"]

/** The fields of a stored event that the tests read (`Data` for more of its data). */
export interface Stored<Data = { readonly step?: number; readonly node?: string }> {
  readonly id: number
  readonly event: string
  readonly data: Data
}

/** The events of an SSE text, block by block. */
export const parseEvents = <Data = Stored["data"]>(text: string): Array<Stored<Data>> =>
  text.split("\n\n").filter((block) => block.trim().length > 0).map((block): Stored<Data> => {
    const field = (name: string) =>
      block.split("\n").find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2)
    return { id: Number(field("id")), event: field("event") ?? "", data: JSON.parse(field("data") ?? "null") }
  })

/** The stored history of the run `id` on the service at `url`, read to the end of its stream (the run must have ended). */
export const historyOf = <Data = Stored["data"]>(url: string, id: string) =>
  Effect.promise(async () => parseEvents<Data>(await (await fetch(`${url}/v1/runs/${id}/events`)).text()))

/** Whether the ids run 1, 2, 3... without a gap. */
export const gapless = (events: ReadonlyArray<Stored>) => events.every((event, i) => event.id === i + 1)

/** The nodes of the NodeFinished events, in order. */
export const finishedNodes = (events: ReadonlyArray<Stored>) =>
  events.filter((event) => event.event === "NodeFinished").map((event) => event.data.node)

/** What a run's history says: gapless ids, and the `step:node`s that finished more than once. */
export const verdict = (events: ReadonlyArray<Stored>) => {
  const finishes = new Map<string, number>()
  for (const event of events.filter((e) => e.event === "NodeFinished")) {
    const key = `${event.data.step}:${event.data.node}`
    finishes.set(key, (finishes.get(key) ?? 0) + 1)
  }
  return { gapless: gapless(events), twice: [...finishes].filter(([, n]) => n > 1).map(([key]) => key) }
}

/**
 * A finished run's history (`id` names it in the messages): gapless ids, each (step, node)
 * finished once, the finished nodes `nodes` in order when given, WorkflowFinished last.
 */
export const checkHistory = (id: string, events: ReadonlyArray<Stored>, nodes?: ReadonlyArray<string>) => {
  const ids = events.map((event) => event.id)
  assert.deepStrictEqual(ids, ids.map((_, i) => i + 1), `${id}: event ids with a gap`)
  assert.deepStrictEqual(verdict(events).twice, [], `${id}: a (step, node) finished twice`)
  if (nodes !== undefined) {
    assert.deepStrictEqual<ReadonlyArray<string | undefined>>(finishedNodes(events), nodes, `${id}: finished nodes`)
  }
  assert.strictEqual(events[events.length - 1]?.event, "WorkflowFinished", `${id}: last event`)
}
