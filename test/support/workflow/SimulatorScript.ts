/**
 * A script written for the Ollama simulator (its request and reply shapes), played by
 * the in-memory `LanguageModel.layerTest` instead: the same conversation, no HTTP.
 */
import type { ChatRequest } from "../../../src/domain/Chat.js"
import type { Reply } from "../../../src/domain/LanguageModel.js"
import type { SimChatRequest, SimReply } from "../../../src/infrastructure/ollama/OllamaSimulator.js"

const isRecord = (value: unknown): value is { readonly [key: string]: unknown } =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The request as the simulator's script would have read it off the wire. */
const simRequest = (request: ChatRequest): SimChatRequest => ({
  model: request.model,
  messages: request.messages.map((message) => ({
    role: message.role,
    content: message.content,
    ...(message.toolName === undefined ? {} : { tool_name: message.toolName })
  })),
  tools: request.tools.map((tool) => ({ function: { name: tool.name } })),
  stream: false
})

export const fromSimulator = (script: (request: SimChatRequest) => SimReply) => (request: ChatRequest): Reply => {
  const reply = script(simRequest(request))
  return {
    content: reply.content,
    toolCalls: (reply.toolCalls ?? []).map((call) => ({
      name: call.name,
      arguments: isRecord(call.arguments) ? call.arguments : {}
    }))
  }
}
