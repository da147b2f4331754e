/**
 * Loom's public library surface: the domain model, the ports, the resilience kernel
 * and the application services, as namespaces other Effect apps compose.
 */
export * as Chat from "./domain/Chat.js"
export * as Cpu from "./domain/Cpu.js"
export * as Errors from "./domain/Errors.js"
export * as LanguageModel from "./domain/LanguageModel.js"
export * as LlmErrors from "./domain/LlmErrors.js"
export * as Process from "./domain/Process.js"
export * as RetryPolicy from "./domain/RetryPolicy.js"
export * as Tool from "./domain/Tool.js"
export * as ToolCall from "./domain/ToolCall.js"
export * as ToolRegistry from "./domain/ToolRegistry.js"
export * as ToolResult from "./domain/ToolResult.js"

export * as CpuPool from "./infrastructure/cpu/CpuPool.js"
export * as NodeCpuRunner from "./infrastructure/cpu/NodeCpuRunner.js"
export * as NodeProcessRunner from "./infrastructure/process/NodeProcessRunner.js"
export * as ResourceMonitor from "./infrastructure/telemetry/ResourceMonitor.js"

export * as OllamaConfig from "./infrastructure/ollama/OllamaConfig.js"
export * as OllamaLanguageModel from "./infrastructure/ollama/OllamaLanguageModel.js"
export * as OllamaSimulator from "./infrastructure/ollama/OllamaSimulator.js"

export * as Batcher from "./infrastructure/resilience/Batcher.js"
export * as BreakerState from "./infrastructure/resilience/BreakerState.js"
export * as CircuitBreaker from "./infrastructure/resilience/CircuitBreaker.js"
export * as MetricTags from "./infrastructure/resilience/MetricTags.js"
export * as Retry from "./infrastructure/resilience/Retry.js"
export * as Timeouts from "./infrastructure/resilience/Timeouts.js"
export * as WorkerPool from "./infrastructure/resilience/WorkerPool.js"
export * as InMemoryToolRegistry from "./infrastructure/tools/InMemoryToolRegistry.js"

export * as ToolExecutor from "./application/ToolExecutor.js"
export * as ToolGraph from "./application/ToolGraph.js"
export * as CpuTools from "./application/tools/CpuTools.js"
