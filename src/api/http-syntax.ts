// The HTTP field grammar (RFC 9110 §5.1, §5.5) that config validation, the compiler and the proxy's HTTP/1.1 code all check names and values against.

/** A token: a field name, a method, a cookie name. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * A character a field value may not hold: a control other than tab (a CR or
 * LF would split the head), or anything past latin-1, which the wire cannot
 * carry as it is. The same rule as node's own header check.
 */
export const INVALID_FIELD_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
