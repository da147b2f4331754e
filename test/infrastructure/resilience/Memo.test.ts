import { assert, describe, it } from "@effect/vitest"
import * as Memo from "../../../src/infrastructure/resilience/Memo.js"

describe("Memo.perObject", () => {
  it("makes a value once per object, undefined values included, and apart for each object", () => {
    const made: Array<string> = []
    const of = Memo.perObject((key: { readonly name: string }) => {
      made.push(key.name)
      return key.name === "none" ? undefined : `${key.name}!`
    })
    const a = { name: "a" }
    const none = { name: "none" }
    assert.deepStrictEqual([of(a), of(a), of(none), of(none), of({ name: "a" })], [
      "a!",
      "a!",
      undefined,
      undefined,
      "a!"
    ])
    assert.deepStrictEqual(made, ["a", "none", "a"])
  })
})
