// __TEMPLATE_NAME__'s own Remotion compositions (added by `vidfarm template new --remotion`).
// `vidfarm template build` bundles this folder with the operator's Remotion renderer
// (`remotion`, `react` and `react-dom` come from there: no npm install here), and the bundle
// is signed and published with the component. Render a composition from a job with
// `ctx.remotion.render({ compositionId: "Title", inputProps: { title: "..." } })`; a template
// with this folder renders its own compositions and no one else's.
import {registerRoot} from 'remotion';
import {Root} from './Root';

registerRoot(Root);
