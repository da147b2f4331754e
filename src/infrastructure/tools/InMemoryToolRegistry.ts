/** The embedded ToolRegistry: tools held in memory, registered at start-up or at run time. */
import { Effect, Layer, PubSub, Ref, Stream } from "effect"
import { ToolNotFound } from "../../domain/Errors.js"
import type { ToolDefinition } from "../../domain/Tool.js"
import { ToolRegistry } from "../../domain/ToolRegistry.js"

export const make = (tools: Iterable<ToolDefinition> = []) =>
  Effect.gen(function*() {
    const ref = yield* Ref.make<ReadonlyMap<string, ToolDefinition>>(
      new Map(Array.from(tools, (tool) => [tool.name, tool]))
    )
    const changed = yield* PubSub.sliding<void>(16)
    return ToolRegistry.of({
      get: (name) =>
        Effect.flatMap(Ref.get(ref), (map) => {
          const tool = map.get(name)
          return tool ? Effect.succeed(tool) : Effect.fail(new ToolNotFound({ tool: name }))
        }),
      list: Effect.map(Ref.get(ref), (map) => Array.from(map.values())),
      register: (tool) =>
        Ref.update(ref, (map) => new Map(map).set(tool.name, tool)).pipe(
          Effect.zipRight(PubSub.publish(changed, undefined))
        ),
      changes: Stream.fromPubSub(changed)
    })
  })

export const layer = (tools: Iterable<ToolDefinition> = []) => Layer.effect(ToolRegistry, make(tools))
