// ugc-voiceover's own compositions: bundled by `vidfarm template build` (and by `vidfarm serve`
// for the built-in), signed and published with the component, rendered only for this template.
import {registerRoot} from 'remotion';
import {Root} from './Root';

registerRoot(Root);
