// Route layer: picks the first rule of a route table whose match fits the request, and runs that rule's stack.
import type { HttpRouteRule, RouteTable } from '../../../api/snapshot.ts';
import { ErrorCodes } from '../../../api/errors.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange, HttpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import { compileMatch } from './match.ts';
import { tcpRuleOf } from '../../../api/route-match.ts';

/** HTTP: rules in table order, first match wins; no match answers 404 WEFT_ERR_NO_ROUTE. */
export function route(ruleStack: (rule: HttpRouteRule) => Step<HttpExchange>): Layer<RouteTable, HttpExchange> {
  return (table) => {
    const rules = table.rules.map((rule, i) => ({
      id: rule.id,
      matches: compileMatch(rule.match, `routes["${table.key}"].rules[${i}] (${rule.id}).match`),
      step: ruleStack(rule),
    }));
    const key = table.key;
    return (ex) => {
      for (const rule of rules) {
        if (!rule.matches(ex)) continue;
        ex.routeId = rule.id;
        return rule.step(ex);
      }
      return Promise.reject(proxyError(ErrorCodes.NO_ROUTE, `no rule of ${key} matches ${ex.method} ${ex.pathname}`, 404));
    };
  };
}

/**
 * Opaque TCP has no request to match: it takes the first rule that matches
 * everything (the implicit default route, or a catch-all rule), else the first rule.
 */
export function routeTcp<X extends Exchange>(ruleStack: (rule: HttpRouteRule) => Step<X>): Layer<RouteTable, X> {
  return (table) => {
    const rule = tcpRuleOf(table);
    if (!rule) {
      const key = table.key;
      return () => Promise.reject(proxyError(ErrorCodes.NO_ROUTE, `${key} has no route rule`, 502));
    }
    const step = ruleStack(rule);
    const id = rule.id;
    return (ex) => {
      ex.routeId = id;
      return step(ex);
    };
  };
}
