/**
 * The metrics of the Ollama adapter, in a module of their own because the host (requests,
 * durations, requests in flight), the language model (tokens) and the embedding cache all
 * record them; `OllamaLanguageModel` re-exports them as its public surface.
 */
import { MetricBoundaries } from "effect"
import * as MetricTags from "../resilience/MetricTags.js"

export const requests = MetricTags.counter("loom_llm_requests", "LLM requests by model, host, operation and outcome")
export const duration = MetricTags.histogram(
  "loom_llm_duration_ms",
  MetricBoundaries.exponential({ start: 5, factor: 2, count: 14 }),
  "LLM request duration in milliseconds"
)
export const promptTokens = MetricTags.counter("loom_llm_prompt_tokens", "Prompt tokens by model")
export const completionTokens = MetricTags.counter("loom_llm_completion_tokens", "Completion tokens by model")
export const inFlight = MetricTags.gauge("loom_llm_in_flight", "LLM requests in flight per host")
export const embedCache = MetricTags.counter("loom_llm_embed_cache", "Embedding cache lookups by result (hit or miss)")
