/**
 * The methods each path of the service takes, read from the API's declaration (and the
 * docs routes beside it), so that a known path asked with another method is answered
 * 405 with the methods it takes, not 404 as if it did not exist.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import { LoomApi } from "./Api.js"

interface Route {
  readonly pattern: RegExp
  readonly methods: ReadonlyArray<string>
}

/** The routes served beside the API (HttpService): the OpenAPI document and its docs page. */
const docs: ReadonlyArray<readonly [string, string]> = [["/openapi.json", "GET"], ["/docs", "GET"]]

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** `/v1/runs/:id` as a pattern matching any one segment for each parameter. */
const patternOf = (path: string): RegExp =>
  new RegExp(`^${path.split("/").map((part) => part.startsWith(":") ? "[^/]+" : escape(part)).join("/")}$`)

const routes: ReadonlyArray<Route> = (() => {
  const byPath = new Map<string, Set<string>>()
  const add = (path: string, method: string) => byPath.set(path, (byPath.get(path) ?? new Set()).add(method))
  HttpApi.reflect(LoomApi, {
    onGroup: () => undefined,
    onEndpoint: ({ endpoint }) => add(endpoint.path, endpoint.method)
  })
  for (const [path, method] of docs) add(path, method)
  return Array.from(byPath, ([path, methods]) => ({ pattern: patternOf(path), methods: [...methods].sort() }))
})()

/** The methods `path` (without its query) takes; none when no route has it. */
export const allowedMethods = (path: string): ReadonlyArray<string> =>
  routes.filter((route) => route.pattern.test(path)).flatMap((route) => route.methods)
