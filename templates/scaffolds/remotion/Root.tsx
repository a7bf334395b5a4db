import React from 'react';
import {AbsoluteFill, Composition, interpolate, useCurrentFrame} from 'remotion';

type TitleProps = {title: string};

// A title that fades in: replace it with your own compositions (one <Composition> each).
const Title: React.FC<TitleProps> = ({title}) => {
	const frame = useCurrentFrame();
	const opacity = interpolate(frame, [0, 20], [0, 1], {extrapolateRight: 'clamp'});
	return (
		<AbsoluteFill style={{backgroundColor: '#101820', justifyContent: 'center', alignItems: 'center'}}>
			<div style={{opacity, color: 'white', fontSize: 72, fontFamily: 'sans-serif'}}>{title}</div>
		</AbsoluteFill>
	);
};

export const Root: React.FC = () => (
	<Composition
		id="Title"
		component={Title}
		width={1280}
		height={720}
		fps={30}
		durationInFrames={90}
		defaultProps={{title: '__TEMPLATE_NAME__'}}
	/>
);
