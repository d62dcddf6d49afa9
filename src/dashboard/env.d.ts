// Module types Vite provides at build time: CSS files imported for their side effect.
declare module '*.css';
