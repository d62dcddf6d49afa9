// Shape checks for the snapshot a proxy is given: small combinators that list every mismatch with its path. No schema library in a proxy.
//
// The control plane validates what users write with zod, whose messages name every field a user can get wrong. A
// proxy only re-checks that its control plane (or its data-dir copy) sent the snapshot's shape before compiling it,
// and zod cost every proxy ~6 MiB of resident memory for that (docs/performance.md, "Memory"). These checks
// accept extra fields everywhere (a newer control plane may add some) and return nothing: the caller keeps its own
// object.

export interface ShapeIssue {
  path: string;
  message: string;
}

/** Checks `value`, pushing what is wrong onto `issues`; `path` is where `value` sits ("" at the root). */
export type Shape = (value: unknown, path: string, issues: ShapeIssue[]) => void;

function at(path: string, key: string | number): string {
  return path === '' ? String(key) : `${path}.${key}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value === 'string' ? 'a string' : `${typeof value} ${String(value)}`;
}

/** A short string, quoted, for a message about a name or kind; undefined for anything else (a long string may be a key). */
function shortText(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= 64 ? JSON.stringify(value) : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function str(rules: { min?: number; pattern?: RegExp } = {}): Shape {
  return (value, path, issues) => {
    if (typeof value !== 'string') issues.push({ path, message: `expected a string, got ${describe(value)}` });
    else if (rules.min !== undefined && value.length < rules.min) issues.push({ path, message: `must be at least ${rules.min} character(s) long` });
    else if (rules.pattern && !rules.pattern.test(value)) issues.push({ path, message: `must match ${String(rules.pattern)}` });
  };
}

export function num(rules: { int?: boolean; min?: number; max?: number; positive?: boolean } = {}): Shape {
  return (value, path, issues) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) issues.push({ path, message: `expected a number, got ${describe(value)}` });
    else if (rules.int && !Number.isInteger(value)) issues.push({ path, message: `expected an integer, got ${value}` });
    else if (rules.positive && value <= 0) issues.push({ path, message: `must be greater than 0, got ${value}` });
    else if (rules.min !== undefined && value < rules.min) issues.push({ path, message: `must be at least ${rules.min}, got ${value}` });
    else if (rules.max !== undefined && value > rules.max) issues.push({ path, message: `must be at most ${rules.max}, got ${value}` });
  };
}

export const bool: Shape = (value, path, issues) => {
  if (typeof value !== 'boolean') issues.push({ path, message: `expected a boolean, got ${describe(value)}` });
};

/** One of the given strings or numbers. */
export function oneOf(values: readonly (string | number)[]): Shape {
  const allowed = new Set<unknown>(values);
  return (value, path, issues) => {
    if (!allowed.has(value)) issues.push({ path, message: `must be one of ${values.join(', ')}, got ${shortText(value) ?? describe(value)}` });
  };
}

/** Shapes made by `optional`: `object` lets their fields be absent. */
const optionals = new WeakSet<Shape>();

export function optional(shape: Shape): Shape {
  const checkPresent: Shape = (value, path, issues) => {
    if (value !== undefined) shape(value, path, issues);
  };
  optionals.add(checkPresent);
  return checkPresent;
}

export function array(item: Shape): Shape {
  return (value, path, issues) => {
    if (!Array.isArray(value)) issues.push({ path, message: `expected an array, got ${describe(value)}` });
    else for (let i = 0; i < value.length; i++) item(value[i], at(path, i), issues);
  };
}

/** An object used as a map: any keys, every value of one shape. */
export function record(item: Shape): Shape {
  return (value, path, issues) => {
    if (!isRecord(value)) issues.push({ path, message: `expected an object, got ${describe(value)}` });
    else for (const key of Object.keys(value)) item(value[key], at(path, key), issues);
  };
}

/** An object with these fields (absent ones are checked as undefined, so `optional` makes a field optional); others are allowed. */
export function object(fields: Readonly<Record<string, Shape>>): Shape {
  const entries = Object.entries(fields);
  return (value, path, issues) => {
    if (!isRecord(value)) {
      issues.push({ path, message: `expected an object, got ${describe(value)}` });
      return;
    }
    for (const [key, shape] of entries) {
      const field = value[key];
      if (field === undefined && !optionals.has(shape)) issues.push({ path: at(path, key), message: 'is required' });
      else shape(field, at(path, key), issues);
    }
  };
}

/** An object whose `key` field says which shape the rest has; an unknown kind is an issue. */
export function tagged(key: string, kinds: Readonly<Record<string, Shape>>): Shape {
  const names = Object.keys(kinds);
  return (value, path, issues) => {
    if (!isRecord(value)) {
      issues.push({ path, message: `expected an object, got ${describe(value)}` });
      return;
    }
    const kind = value[key];
    if (typeof kind !== 'string' || !Object.hasOwn(kinds, kind)) {
      issues.push({ path: at(path, key), message: `must be one of ${names.join(', ')}, got ${shortText(kind) ?? describe(kind)}` });
      return;
    }
    kinds[kind]!(value, path, issues);
  };
}

/** Runs `shape` over `value`: every issue found, in document order. */
export function check(shape: Shape, value: unknown, path = ''): ShapeIssue[] {
  const issues: ShapeIssue[] = [];
  shape(value, path, issues);
  return issues;
}
