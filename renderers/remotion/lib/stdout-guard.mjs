// Imported first by render.mjs and lambda-standin.mjs: anything printed with
// console.log/info/debug (Remotion's logger included) goes to stderr, so stdout
// carries only the JSON protocol. (A module of its own because ES imports are
// evaluated before the importing module's body.)
for (const k of ['log', 'info', 'debug']) {
	console[k] = (...args) => console.error(...args);
}
