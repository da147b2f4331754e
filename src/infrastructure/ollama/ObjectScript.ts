/**
 * A simulator script for structured output, so that the retry with feedback of
 * `generateObject` runs over real sockets: a request with a `format` is answered with
 * `first` until the conversation holds an earlier answer (the model has been told what was
 * wrong), and with `corrected` after. Requests without a format get the default script.
 */
import type { SimChatRequest, SimReply } from "./OllamaSimulator.js"
import { defaultScript } from "./OllamaSimulator.js"

/** Text as it is (to send what is not JSON), anything else as its JSON, over several lines as models write it. */
const contentOf = (answer: unknown): string =>
  typeof answer === "string" ? answer : JSON.stringify(answer, null, 2) ?? "null"

export const correctedOnFeedback = (first: unknown, corrected: unknown) => (request: SimChatRequest): SimReply => {
  if (request.format === undefined) return defaultScript(request)
  const told = request.messages.some((message) => message.role === "assistant")
  return { content: contentOf(told ? corrected : first) }
}
