/**
 * Effect's metrics in Prometheus text format: @effect/opentelemetry feeds every Effect
 * Metric to an OpenTelemetry MeterProvider whose reader is the Prometheus exporter
 * (its own HTTP server off; the service serves `/metrics`). Spans go to OTLP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Config, Context, Effect, Layer, Option } from "effect"

export interface Service {
  /** The current metrics, in Prometheus text format. */
  readonly scrape: Effect.Effect<string>
}

export class Prometheus extends Context.Tag("loom/Prometheus")<Prometheus, Service>() {}

export const layer = Layer.unwrapEffect(Effect.gen(function*() {
  const otlp = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT"))
  const exporter = new PrometheusExporter({ preventServerStart: true })
  const serializer = new PrometheusSerializer()
  const sdk = NodeSdk.layer(() => ({ resource: { serviceName: "loom" }, metricReader: exporter }))
  const tracing = Option.match(otlp, {
    onNone: () => Layer.empty,
    onSome: (endpoint) =>
      OtlpTracer.layer({ url: `${endpoint}/v1/traces`, resource: { serviceName: "loom" } }).pipe(
        Layer.provide(FetchHttpClient.layer),
        Layer.provide(OtlpSerialization.layerJson)
      )
  })
  const scrape = Effect.promise(() => exporter.collect()).pipe(
    Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
  )
  return Layer.mergeAll(Layer.succeed(Prometheus, Prometheus.of({ scrape })), sdk, tracing)
}))
