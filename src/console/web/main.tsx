// Entry point of the admin console bundle (app.js): mounts the app into index.html's #app.

import { render } from 'preact';
import { App } from './app';

const root = document.getElementById('app');
if (root) render(<App />, root);
