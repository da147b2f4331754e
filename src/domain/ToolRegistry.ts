/** The port through which the executor and agents find tools by name. */
import type { Effect, Stream } from "effect"
import { Context } from "effect"
import type { ToolNotFound } from "./Errors.js"
import type { ToolDefinition } from "./Tool.js"

export interface Service {
  readonly get: (name: string) => Effect.Effect<ToolDefinition, ToolNotFound>
  readonly list: Effect.Effect<ReadonlyArray<ToolDefinition>>
  /** Adds or replaces a tool. */
  readonly register: (tool: ToolDefinition) => Effect.Effect<void>
  /** Emits whenever the set of tools may have changed (MCP servers tell their clients). */
  readonly changes: Stream.Stream<void>
}

export class ToolRegistry extends Context.Tag("loom/ToolRegistry")<ToolRegistry, Service>() {}
