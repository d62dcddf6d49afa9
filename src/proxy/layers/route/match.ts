// The route layer's matchers: shared with `weft explain` from src/api/route-match.ts, so that both decide alike.
export { compileMatch, compileMatchConditions, fullMatchRegex, type Matcher, type MatchableRequest } from '../../../api/route-match.ts';
