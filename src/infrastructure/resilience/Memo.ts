/**
 * A value made once per object and kept as long as the object lives: what a hot path
 * derives from a definition that never changes (a tool's JSON Schema or codec, an agent's
 * span options) is not made again on every call.
 */
export const perObject = <K extends object, V>(make: (key: K) => V): (key: K) => V => {
  const made = new WeakMap<K, V>()
  return (key) => {
    if (made.has(key)) return made.get(key) as V
    const value = make(key)
    made.set(key, value)
    return value
  }
}
