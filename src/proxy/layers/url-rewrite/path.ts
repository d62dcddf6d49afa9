// Path modifiers shared by URLRewrite and RequestRedirect (and `weft explain`): they live in src/api/http-filters.ts.
export { compilePathModifier, type PathRewrite } from '../../../api/http-filters.ts';
